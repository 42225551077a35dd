"""Scale-down on one node with Docker work in flight: 50 replicas that ignore SIGTERM (so
each stop lasts its whole 10 s grace) scaled to 1, and meanwhile another function's
replica on the same node killed: its replacement is ready within 2 s, and the 49 stops
end together after their grace (and the engine's own teardown), not one lane-full after
another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.settings import BusSettings
from events.topics import REPLICAS, SCALE
from events.types import ReplicaFailed, ReplicaReady, ReplicaStopped, ScaleDecision
from services.common.labels import LABEL_FUNCTION
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.platform import Platform, call, running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

DEAF = ["/bin/sh", "-c", "trap '' TERM; exec httpd -f -p ${HOST}:${PORT} -h /www"]
SMALL = {"image": "shoal-test/hello:1", "cpu": 0.1, "cpu_request": 0.01, "memory_mb": 16}
"""A CPU limit of 0.01 would make each start take 2-3 s of throttled time in the engine."""
MANY = 50
GRACE_S = 10.0


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(
        bus, tmp_path, docker_client, SHOAL_NODE_MAX_REPLICAS="200"
    ) as parts:
        yield parts


async def test_a_crash_during_a_scale_down_of_50_slow_stops_is_repaired_within_2_s(
    cluster: Platform, bus: BusSettings, docker_client: Any
) -> None:
    api = f"{cluster.api.url}/v1/functions"
    async with EventLog(bus, [REPLICAS, SCALE]) as log:
        many = {"name": "many", **SMALL, "command": DEAF, "stop_grace_s": GRACE_S}
        await call("POST", api, {**many, "min_replicas": MANY, "initial_scale": MANY}, 201)
        await call("POST", api, {"name": "steady", **SMALL, "min_replicas": 1}, 201)
        await log.wait_for(ReplicaReady, lambda r: r.function == "many", count=MANY, timeout_s=180)
        (first,) = await log.wait_for(ReplicaReady, lambda r: r.function == "steady")
        patch = {
            "min_replicas": 1,
            "max_replicas": 1,
            "initial_scale": 1,
            "max_scale_down_rate": 1000,
        }
        await call("PATCH", f"{api}/many", patch)
        await log.wait_for(ScaleDecision, lambda d: d.function == "many" and d.desired == 1)
        await asyncio.sleep(1.0)  # the drains are over: 49 stops are in their grace
        (victim,) = docker_client.containers.list(filters={"label": f"{LABEL_FUNCTION}=steady"})
        killed = time.monotonic()
        victim.kill()
        await log.wait_for(ReplicaFailed, lambda r: r.replica_id == first.replica_id)
        await log.wait_for(
            ReplicaReady,
            lambda r: r.function == "steady" and r.replica_id != first.replica_id,
            timeout_s=30,
        )
        repaired_s = time.monotonic() - killed
        stopped = await log.wait_for(
            ReplicaStopped, lambda r: r.function == "many", count=MANY - 1, timeout_s=60
        )
        all_stopped_s = time.monotonic() - killed
    assert repaired_s <= 2.0, f"the crash was repaired in {repaired_s:.2f} s"
    assert len(stopped) == MANY - 1
    # Stops waiting in lanes, as when each held a thread through its grace, would take
    # 7 rounds of 8 graces (70 s and more); the engine itself tears 49 bridged containers
    # down in 5 s on this machine alone and in up to 15 s under CI's load (21.1 s seen).
    assert all_stopped_s < 4 * GRACE_S, f"49 stops took {all_stopped_s:.1f} s"
