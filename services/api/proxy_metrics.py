"""The request path's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
