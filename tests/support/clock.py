"""A clock the test moves by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    monotonic: float = 1000.0
    started: datetime = field(default=START)

    def now(self) -> float:
        return self.monotonic

    def wall(self) -> datetime:
        return self.started + timedelta(seconds=self.monotonic - 1000.0)

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds
