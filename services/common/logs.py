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
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


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
    logging.getLogger("shoal").info("logging configured", extra={"fields": {"service": service}})
