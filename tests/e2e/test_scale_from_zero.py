"""End to end: a function at zero is cold-started by its first request, grows under load,
and returns to zero after its grace period; no request fails."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import pytest

from events.types import ReplicaReady, ReplicaStopped, ScaleDecision
from tests.e2e.conftest import AUTH, Platform
from tests.support.event_log import EventLog

pytestmark = [pytest.mark.kafka, pytest.mark.docker]


async def test_a_function_at_zero_cold_starts_scales_up_and_returns_to_zero(
    platform: Platform, history: EventLog
) -> None:
    api = platform.api.url
    spec = {
        "name": "hello",
        "image": "shoal-test/sleep:1",
        "min_replicas": 0,
        "initial_scale": 0,
        "max_replicas": 4,
        "target": 2,
        "target_utilization": 1.0,
        "concurrency_limit": 2,
        "scale_to_zero_grace_s": 4,
        "stable_window_s": 6,
        "cpu": 0.2,
        "memory_mb": 32,
        "env": {"SLEEP_S": "0.3"},
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply:
            assert reply.status == 201, await reply.text()
        started = time.monotonic()
        async with http.get(f"{api}/fn/hello/cgi-bin/sleep") as reply:
            assert reply.status == 200, await reply.text()
            assert "slept 0.3" in await reply.text()
        cold_s = time.monotonic() - started
        first = await history.wait_for(ScaleDecision, lambda d: d.desired >= 1)
        assert first[0].reason.startswith("cold start")
        assert cold_s < 10

        statuses: list[int] = []

        async def call() -> None:
            async with http.get(f"{api}/fn/hello/cgi-bin/sleep") as r:
                await r.read()
                statuses.append(r.status)

        step_at = datetime.now(UTC)
        deadline = time.monotonic() + 8

        async def worker() -> None:
            while time.monotonic() < deadline:
                await call()

        await asyncio.gather(*(worker() for _ in range(8)))
        grown = await history.wait_for(ScaleDecision, lambda d: d.desired >= 3, timeout_s=10)
        assert grown[0].desired <= 4
        # 8 calls in flight against a target of 2 per replica imply 4 replicas. In panic
        # mode the autoscaler reaches them within two ticks (1 s each here) of the load
        # being measured: one stats interval (0.5 s) and one complete window second later.
        decisions = [
            (
                round((e.time - step_at).total_seconds(), 2),
                e.data.desired,
                e.data.panic,
                e.data.reason,
            )
            for e in history.events
            if isinstance(e.data, ScaleDecision) and e.time >= step_at
        ]
        implied = [d for d in decisions if d[1] == 4]
        assert implied and implied[0][2], decisions
        assert implied[0][0] < 2 * 1.0 + 0.5 + 1.0 + 1.0, decisions
        assert len(history.of(ReplicaReady)) >= 3
        assert statuses and set(statuses) == {200}

        stopped = await history.wait_for(
            ScaleDecision, lambda d: d.desired == 0 and d.previous > 0, timeout_s=40
        )
        assert "scale to zero" in stopped[0].reason
        ready = len(history.of(ReplicaReady))
        await history.wait_for(ReplicaStopped, count=ready, timeout_s=30)
        async with http.get(f"{api}/v1/functions/hello", headers=AUTH) as reply:
            status = await reply.json()
        assert status["desired"] == 0
        assert status["last_decision"]["reason"].startswith("concurrency")
