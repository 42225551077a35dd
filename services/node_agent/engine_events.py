"""The Docker Engine's container events as a node-agent reads them: which it asks for, the
thread that hands them to the loop, and what they say of a replica's end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from events.bounds import printable
from events.types import LAST_LOG_LINES
from services.common.labels import LABEL_NODE

LOG_BYTES = 64 * 1024
"""The most of a dying container's log tail read: a log of one endless line stays small."""
LOG_LINE_CHARS = 400
SIGKILLED = 137
"""The exit code of a process (or of the init that ran it) ended by SIGKILL."""


def event_filters(node_id: str) -> dict[str, Any]:
    """The node's replica containers' signals, memory exhaustions, deaths and removals."""
    return {
        "type": "container",
        "label": f"{LABEL_NODE}={node_id}",
        "event": ["kill", "oom", "die", "destroy"],
    }


def read_events(
    stream: Any,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[dict[str, Any] | BaseException],
) -> None:
    """Hand an events stream's items to the loop (in a thread of its own: the stream
    blocks); its end or failure is the last item."""
    try:
        for event in stream:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        loop.call_soon_threadsafe(queue.put_nowait, ConnectionError("events stream ended"))
    except Exception as exc:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, exc)


@dataclass(frozen=True)
class Death:
    """A replica container's end as the events told it."""

    exit_code: int | None
    removed: bool
    oom: bool
    """The engine saw its memory exhausted."""
    killed: bool
    """The engine was told to signal it (docker kill or stop, its own shutdown)."""

    @property
    def unexplained_kill(self) -> bool:
        """Ended by SIGKILL that no one told the engine of: perhaps its memory, though the
        engine's note of that did not come first."""
        return self.exit_code == SIGKILLED and not (self.killed or self.oom)


class DeathNotes:
    """What the engine said of each replica before its death, folded into the death."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    def fold(self, replica_id: str, action: str, attributes: dict[str, Any]) -> Death | None:
        """The death an event announces, or None while it only notes (a signal, an OOM)."""
        if action in ("kill", "oom"):
            self._seen.setdefault(replica_id, set()).add(action)
            return None
        if action not in ("die", "destroy"):
            return None
        seen = self._seen.pop(replica_id, set())
        if action == "destroy":
            return Death(exit_code=None, removed=True, oom=False, killed=False)
        code = str(attributes.get("exitCode", ""))
        exit_code = int(code) if code.lstrip("-").isdigit() and len(code) < 12 else None
        return Death(exit_code=exit_code, removed=False, oom="oom" in seen, killed="kill" in seen)


def last_lines(raw: bytes) -> list[str]:
    """A log tail as printable lines, each and all bounded."""
    text = raw[-LOG_BYTES:].decode(errors="replace")
    return [printable(line)[:LOG_LINE_CHARS] for line in text.splitlines()[-LAST_LOG_LINES:]]
