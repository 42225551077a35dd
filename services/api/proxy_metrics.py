"""The request path's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from services.common.forgetting import forget_series

REQUESTS = Counter("shoal_api_requests_total", "Function calls answered", ["function", "code"])
LATENCY = Histogram(
    "shoal_api_request_seconds",
    "Function call latency",
    ["function"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge("shoal_api_queue_depth", "Requests waiting for a replica", ["function"])
COLD_STARTS = Counter(
    "shoal_api_cold_starts_total", "Requests that found no ready replica", ["function"]
)
EJECTIONS = Counter(
    "shoal_api_ejections_total",
    "Replicas taken out of routing for a while after refusing a connection",
    ["function"],
)
COLD_START_SECONDS = Histogram(
    "shoal_api_cold_start_seconds",
    "Wait of a cold-started request for its replica",
    ["function"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
RELAYED = Counter(
    "shoal_api_relayed_total",
    "Function calls relayed to the api instance that holds the replicas' slots (counted there)",
    ["function"],
)


@dataclass
class CallMetrics:
    """The per-function series of answered calls, made once per function (and code)."""

    _latency: dict[str, Any] = field(default_factory=dict)
    _requests: dict[tuple[str, int], Any] = field(default_factory=dict)

    def answered(self, name: str, status: int, seconds: float) -> None:
        code = status if 100 <= status < 600 else 0
        counter = self._requests.get((name, code))
        if counter is None:
            label = str(code) if code else "other"
            counter = self._requests[(name, code)] = REQUESTS.labels(name, label)
        counter.inc()
        latency = self._latency.get(name)
        if latency is None:
            latency = self._latency[name] = LATENCY.labels(name)
        latency.observe(seconds)

    def forget(self, function: str) -> None:
        """Drop every series of a function that is gone."""
        if self._latency.pop(function, None) is not None:
            forget_series(LATENCY, function)
        for key in [k for k in self._requests if k[0] == function]:
            del self._requests[key]
            forget_series(REQUESTS, function, str(key[1]) if key[1] else "other")
        for metric in (QUEUE_DEPTH, COLD_STARTS, COLD_START_SECONDS, EJECTIONS, RELAYED):
            forget_series(metric, function)
