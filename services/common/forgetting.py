"""Forgetting what is gone: a process keeps nothing, metric series included, about a
function deleted long ago or a replica long ended."""

from __future__ import annotations

import contextlib

from prometheus_client.metrics import MetricWrapperBase

FORGET_AFTER_S = 600.0
"""How long after it ended a thing is kept: late news about it is still understood."""
PRUNE_EVERY_S = 60.0


def forget_series(metric: MetricWrapperBase, *labels: str) -> None:
    """Drop one labelled series of a metric, if it exists."""
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
