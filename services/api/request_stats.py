"""Per-function request statistics over one reporting interval (pure; time is passed in)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from events.types import FINE_LATENCY_BOUNDS_MS, LATENCY_BOUNDS_MS


@dataclass
class Snapshot:
    requests: int
    errors: int
    mean_concurrency: float
    peak_concurrency: int
    latency_buckets: list[int]
    latency_fine: list[int]


@dataclass
class RequestWindow:
    """Counts since the last snapshot; concurrency is integrated over time."""

    started_at: float
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    peak: int = 0
    _area: float = 0.0
    _last_change: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    fine: list[int] = field(default_factory=lambda: [0] * (len(FINE_LATENCY_BOUNDS_MS) + 1))

    def __post_init__(self) -> None:
        self._last_change = self.started_at

    def _advance(self, now: float) -> None:
        self._area += self.in_flight * max(0.0, now - self._last_change)
        self._last_change = now

    def begin(self, now: float) -> None:
        self._advance(now)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def end(self, now: float, *, latency_ms: float, error: bool) -> None:
        self._advance(now)
        self.in_flight -= 1
        self.requests += 1
        self.errors += int(error)
        self.buckets[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1
        self.fine[bisect.bisect_left(FINE_LATENCY_BOUNDS_MS, latency_ms)] += 1

    def idle(self, snap: Snapshot) -> bool:
        """Whether nothing happened in the snapshot's interval and nothing is in flight."""
        return not (snap.requests or snap.mean_concurrency or self.in_flight)

    def snapshot(self, now: float) -> Snapshot:
        """What happened since the last snapshot; starts the next interval at `now`."""
        self._advance(now)
        elapsed = now - self.started_at
        snap = Snapshot(
            requests=self.requests,
            errors=self.errors,
            mean_concurrency=self._area / elapsed if elapsed > 0 else float(self.in_flight),
            peak_concurrency=self.peak,
            latency_buckets=self.buckets,
            latency_fine=self.fine,
        )
        self.started_at = now
        self.requests = self.errors = 0
        self.peak = self.in_flight
        self._area = 0.0
        self.buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.fine = [0] * (len(FINE_LATENCY_BOUNDS_MS) + 1)
        return snap
