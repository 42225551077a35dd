"""The clock a shell reads, passed in so that tests can drive it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


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
