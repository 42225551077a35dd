"""Scale-down on one node with Docker work in flight: 50 replicas that ignore SIGTERM (so
each stop lasts its whole 10 s grace) scaled to 1, and meanwhile another function's
replica on the same node killed: its replacement is ready within 2 s (or, on a machine
busy with other work, within 2.5 times the time the same repair takes alone), and the 49 stops
end together after their grace (and the engine's own teardown), not one lane-full after
another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from events.settings import BusSettings
from events.topics import REPLICAS, SCALE
from events.types import ReplicaFailed, ReplicaReady, ReplicaStopped, ScaleDecision
from services.common.labels import LABEL_REPLICA
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


def steady(ready: ReplicaReady) -> bool:
    return ready.function == "steady"


async def crash_repair_s(log: EventLog, docker_client: Any, replica_id: str) -> tuple[float, str]:
    """Kill the replica's container; the seconds from the kill to the ReplicaReady of its
    replacement, both by this host's clock (the event's own time: the test's lag in reading
    the log is not counted), and the replacement's id."""
    (victim,) = docker_client.containers.list(filters={"label": f"{LABEL_REPLICA}={replica_id}"})
    before = {r.replica_id for r in log.of(ReplicaReady, steady)}
    killed = datetime.now(UTC)
    victim.kill()
    await log.wait_for(ReplicaFailed, lambda r: r.replica_id == replica_id)
    (ready,) = await log.wait_for(
        ReplicaReady, lambda r: steady(r) and r.replica_id not in before, timeout_s=30
    )
    (made,) = [e.time for e in log.events if e.data == ready]
    assert made is not None
    return (made - killed).total_seconds(), ready.replica_id


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
        baseline_s, second = await crash_repair_s(log, docker_client, first.replica_id)
        patch = {
            "min_replicas": 1,
            "max_replicas": 1,
            "initial_scale": 1,
            "max_scale_down_rate": 1000,
        }
        await call("PATCH", f"{api}/many", patch)
        await log.wait_for(ScaleDecision, lambda d: d.function == "many" and d.desired == 1)
        await asyncio.sleep(1.0)  # the drains are over: 49 stops are in their grace
        started = time.monotonic()
        repaired_s, _ = await crash_repair_s(log, docker_client, second)
        stopped = await log.wait_for(
            ReplicaStopped, lambda r: r.function == "many", count=MANY - 1, timeout_s=60
        )
        all_stopped_s = time.monotonic() - started
    # 1.1-1.4 s on this machine alone (0.9 s without the stops; a bridged container's start
    # alone takes 0.4 s), 2.0 s beside three other end-to-end tests (1.0 s without): on a
    # machine busy with other work the bound is 2.5 times the same repair without the stops.
    # Stops holding the starts' threads, as before, delayed it by a grace (10 s) and more.
    bound_s = max(2.0, 2.5 * baseline_s)
    assert repaired_s <= bound_s, f"repaired in {repaired_s:.2f} s ({baseline_s:.2f} s alone)"
    assert len(stopped) == MANY - 1
    # Stops waiting in lanes, as when each held a thread through its grace, would take
    # 7 rounds of 8 graces (70 s and more); the engine itself tears 49 bridged containers
    # down in 5 s on this machine alone and in up to 15 s under CI's load (21.1 s seen).
    assert all_stopped_s < 4 * GRACE_S, f"49 stops took {all_stopped_s:.1f} s"
