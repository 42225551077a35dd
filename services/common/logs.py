"""Structured logs: one JSON object per line, with the fields a log call passes."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)[-MAX_LINE_CHARS // 2 :]
        text = json.dumps(line, default=str)
        if len(text) > MAX_LINE_CHARS:
            cut = {k: line[k] for k in ("ts", "level", "logger")} | {"msg": str(line["msg"])[:500]}
            text = json.dumps({**cut, "truncated_from_chars": len(text)})
        return text


MAX_LINE_CHARS = 4000
"""No log line is longer: a hostile function's output cannot flood the logs."""


class Throttle(logging.Filter):
    """Lets the same message through at most once per `every_s` (a library that logs each
    failed reconnect would otherwise write thousands of lines while the broker is away),
    saying how many were held back."""

    def __init__(self, prefix: str, every_s: float = 10.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.every_s = every_s
        self.last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.msg)
        at, held = self.last.get(key, (float("-inf"), 0))
        if record.created - at < self.every_s:
            self.last[key] = (at, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} (and {held} more like it held back)"
        self.last[key] = (record.created, 0)
        if len(self.last) > 1000:
            self.last.clear()
        return True


class StructLog:
    """A logger whose calls take key=value fields: `log.info("replica ready", function=f)`."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def debug(self, msg: str, **fields: Any) -> None:
        self._logger.debug(msg, extra={"fields": fields})

    def info(self, msg: str, **fields: Any) -> None:
        self._logger.info(msg, extra={"fields": fields})

    def warning(self, msg: str, **fields: Any) -> None:
        self._logger.warning(msg, extra={"fields": fields})

    def error(self, msg: str, **fields: Any) -> None:
        self._logger.error(msg, extra={"fields": fields}, exc_info=True)


def configure_logging(level: str, *, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    handler.addFilter(Throttle("aiokafka"))
    logging.getLogger("shoal").info("logging configured", extra={"fields": {"service": service}})
