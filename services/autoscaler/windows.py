"""Time-bucketed metric windows (pure): samples land in one-second buckets, summed across
sources (api instances, replicas) within a bucket, averaged over a window."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

BUCKET_S = 1.0


@dataclass
class MetricWindow:
    """Per-second sums over the last `horizon_s` seconds. Add amounts (requests, or
    concurrency x seconds) so that the window average is a rate (rps, or concurrency)."""

    horizon_s: float
    _buckets: deque[tuple[int, float]] = field(default_factory=deque)

    def add(self, at: float, value: float) -> None:
        second = math.floor(at / BUCKET_S)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1] = (second, self._buckets[-1][1] + value)
        elif not self._buckets or second > self._buckets[-1][0]:
            self._buckets.append((second, value))
        else:
            self._add_late(second, value)
        self._trim(second)

    def _add_late(self, second: int, value: float) -> None:
        for index, (existing, total) in enumerate(self._buckets):
            if existing == second:
                self._buckets[index] = (second, total + value)
                return
            if existing > second:
                self._buckets.insert(index, (second, value))
                return

    def _trim(self, newest: int) -> None:
        oldest = newest - int(self.horizon_s / BUCKET_S)
        while self._buckets and self._buckets[0][0] <= oldest:
            self._buckets.popleft()

    def average(self, now: float, window_s: float) -> float:
        """Mean per second over the last `window_s` complete seconds before `now`. The
        second in progress is left out: it holds only part of its samples and would read
        low. Empty seconds count as zero, as in Knative's buckets."""
        current = math.floor(now / BUCKET_S)
        seconds = max(1, int(window_s / BUCKET_S))
        oldest = current - seconds
        total = sum(v for second, v in self._buckets if oldest <= second < current)
        return total / seconds

    def last_nonzero_at(self) -> float | None:
        for second, value in reversed(self._buckets):
            if value > 0:
                return (second + 1) * BUCKET_S
        return None
