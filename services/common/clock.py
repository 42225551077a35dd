"""The clock a shell reads, passed in so that tests can drive it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from events.envelope import Envelope


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this process's monotonic clock: for intervals, ages and deadlines."""

    def wall(self) -> datetime:
        """The time of day (UTC): for what is written into events and shown to people."""


@dataclass(frozen=True)
class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


@dataclass
class Every:
    """A cadence on a clock: `due(now)` is true once per interval."""

    interval_s: float
    next_at: float = float("-inf")

    def due(self, now: float) -> bool:
        if now < self.next_at:
            return False
        self.next_at = now + self.interval_s
        return True


def written_at(envelope: Envelope) -> float:
    """When the broker appended it, where the topic records that; its own date otherwise."""
    return envelope.appended if envelope.appended is not None else envelope.time.timestamp()


@dataclass
class Hearing:
    """When this process heard each event, on its own clock.

    A live event is heard now. An event read back from the history was heard at no time
    this process knows: it counts as heard as long before the end of the history as it
    was written before the newest history event. `go_live` ends the history and returns
    the offset that moves written times onto this clock; only differences between
    written times are used, never a written time against this process's clock. Written
    is when the broker appended it, where the topic records that (the event's own date
    otherwise)."""

    clock: Clock
    live: bool = False
    newest_written: float | None = None

    def heard(self, envelope: Envelope) -> float:
        if self.live:
            return self.clock.now()
        written = written_at(envelope)
        if self.newest_written is None or written > self.newest_written:
            self.newest_written = written
        return written

    def go_live(self) -> float:
        """The history is read: from now on events are heard live. Returns the offset to
        add to a history event's written time to place it on this process's clock."""
        self.live = True
        if self.newest_written is None:
            return 0.0
        return self.clock.now() - self.newest_written
