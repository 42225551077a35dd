"""End to end: scaling on CPU, and a scheduler restarted mid-life issuing no duplicates."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from events.settings import BusSettings
from events.topics import NODE_COMMANDS, REPLICAS, SCALE
from events.types import (
    ReplicaFailed,
    ReplicaReady,
    ReplicaStopped,
    ScaleDecision,
    StartReplica,
)
from tests.e2e.conftest import AUTH, Platform
from tests.support.event_log import EventLog

pytestmark = [pytest.mark.kafka, pytest.mark.docker]


async def test_a_cpu_bound_function_scales_on_cpu(platform: Platform, history: EventLog) -> None:
    api = platform.api.url
    spec = {
        "name": "burner",
        "image": "shoal-test/cpu:1",
        "min_replicas": 1,
        "initial_scale": 1,
        "max_replicas": 3,
        "scaling_metric": "cpu",
        "target": 50,
        "cpu": 0.2,
        "memory_mb": 32,
        "env": {"BURN_LOOPS": "4000"},
    }
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply:
            assert reply.status == 201, await reply.text()
        await history.wait_for(ReplicaReady, lambda r: r.function == "burner", timeout_s=30)
        stop = asyncio.Event()

        async def burn() -> None:
            while not stop.is_set():
                async with http.get(f"{api}/fn/burner/cgi-bin/burn") as r:
                    await r.read()
                    statuses.append(r.status)

        load = [asyncio.create_task(burn()) for _ in range(4)]
        try:
            scaled = await history.wait_for(
                ScaleDecision, lambda d: d.function == "burner" and d.desired >= 2, timeout_s=40
            )
        finally:
            stop.set()
            await asyncio.gather(*load)
    assert "cpu" in scaled[0].reason
    assert scaled[0].inputs["cpu_pct"] > 55
    assert set(statuses) == {200}


async def test_a_restarted_scheduler_rebuilds_from_the_log_and_starts_nothing_twice(
    platform: Platform, bus: BusSettings, tmp_path: object
) -> None:
    api = platform.api.url
    spec = {
        "name": "steady",
        "image": "shoal-test/hello:1",
        "min_replicas": 2,
        "initial_scale": 2,
        "max_replicas": 2,
        "cpu": 0.1,
        "memory_mb": 32,
    }
    async with EventLog(bus, [NODE_COMMANDS, REPLICAS, SCALE]) as log:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply,
        ):
            assert reply.status == 201, await reply.text()
        await log.wait_for(ReplicaReady, lambda r: r.function == "steady", count=2)
        await platform.scheduler.kill()
        successor = platform.scheduler.successor("scheduler-2")
        await successor.start()
        try:
            # The successor has caught up (it is ready); give it time to act on what it read.
            await asyncio.sleep(4)
            starts = [
                (e.data.replica_id, e.source, e.time.isoformat())
                for e in log.events
                if isinstance(e.data, StartReplica) and e.data.function == "steady"
            ]
            ended = [
                (e.data.replica_id, e.type, getattr(e.data, "reason", ""))
                for e in log.events
                if isinstance(e.data, ReplicaFailed | ReplicaStopped)
                and e.data.function == "steady"
            ]
            assert len(starts) == 2 + len(ended), (starts, ended)
        finally:
            await successor.stop()
