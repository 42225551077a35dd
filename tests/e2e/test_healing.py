"""End to end on two node-agents: crashes, lost and returning nodes, rollbacks, drains and
drift are repaired under load without a failed request, and killed control-plane services
are replaced by successors that converge."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from events.bus import EventProducer
from events.settings import BusSettings
from events.topics import FUNCTIONS, NODE_COMMANDS, NODES, REPLICAS, SCALE
from events.types import (
    DriftRepaired,
    FunctionRolledBack,
    NodeDrained,
    NodeLost,
    NodeReturned,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStopped,
    StartReplica,
    StopReplica,
)
from services.common.labels import LABEL_FUNCTION, LABEL_NODE, LABEL_REPLICA
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.invariants import assert_log_holds
from tests.support.load import steady_load
from tests.support.platform import Platform, call, eventually, running_platform, status_of
from tests.support.service_process import AgentProcess

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

NODE_TIMEOUT_S = 3.0
SPEC = {"image": "shoal-test/hello:1", "cpu": 0.1, "memory_mb": 32}


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(
        bus,
        tmp_path,
        docker_client,
        agents=2,
        SHOAL_HEALER_PROGRESS_DEADLINE_S="8",
        SHOAL_HEALER_NODE_TIMEOUT_S=str(NODE_TIMEOUT_S),
    ) as parts:
        yield parts


@pytest.fixture
async def log(bus: BusSettings) -> AsyncIterator[EventLog]:
    async with EventLog(bus, [FUNCTIONS, SCALE, REPLICAS, NODES, NODE_COMMANDS]) as events:
        yield events


async def deploy_two(cluster: Platform, log: EventLog, name: str) -> dict[str, Any]:
    """A function held at two replicas, one on each node (the scheduler spreads)."""
    spec = {"name": name, **SPEC, "min_replicas": 2, "max_replicas": 2, "initial_scale": 2}
    await call("POST", f"{cluster.api.url}/v1/functions", spec, expect=201)
    await log.wait_for(ReplicaReady, lambda r: r.function == name, count=2, timeout_s=30)
    status = await eventually(lambda: status_of(cluster, name), lambda s: s["ready"] == 2)
    assert {r["node"] for r in status["replicas"]} == {a.node_id for a in cluster.agents}
    return status


def ready_on(node: str) -> Callable[[dict[str, Any]], bool]:
    def good(status: dict[str, Any]) -> bool:
        ready = [r for r in status["replicas"] if r["state"] == "ready"]
        return len(ready) == 2 and all(r["node"] == node for r in ready)

    return good


def containers(docker_client: Any, **labels: str) -> list[Any]:
    return list(
        docker_client.containers.list(
            filters={"label": [f"{key}={value}" for key, value in labels.items()]}
        )
    )


def kill_node(docker_client: Any, agent: AgentProcess) -> None:
    for container in containers(docker_client, **{LABEL_NODE: agent.node_id}):
        container.remove(force=True)


async def test_a_killed_replica_is_replaced_with_no_failed_request(
    cluster: Platform, log: EventLog, docker_client: Any, bus: BusSettings
) -> None:
    status = await deploy_two(cluster, log, "hello")
    victim = status["replicas"][0]["id"]
    url = f"{cluster.api.url}/fn/hello/"
    async with steady_load(url) as load:
        await asyncio.sleep(1)
        (container,) = containers(docker_client, **{LABEL_REPLICA: victim})
        container.kill()
        (failed,) = await log.wait_for(ReplicaFailed, lambda r: r.replica_id == victim)
        assert failed.exit_code == 137
        assert failed.cause == "platform", "killed through the engine, not by its own doing"
        await log.wait_for(
            ReplicaReady, lambda r: r.function == "hello" and r.replica_id != victim, count=2
        )
        await asyncio.sleep(1)
    load.assert_no_failures()
    assert load.total > 100
    await asyncio.sleep(2)  # settled: every command is judged
    held = await assert_log_holds(bus, grace_s=0)
    assert held.checked["start answered"] >= 3, held


async def test_a_lost_node_is_declared_and_its_replicas_move_with_no_failed_request(
    cluster: Platform, log: EventLog, docker_client: Any
) -> None:
    await deploy_two(cluster, log, "hello")
    lost, survivor = cluster.agents
    async with steady_load(f"{cluster.api.url}/fn/hello/") as load:
        await asyncio.sleep(1)
        await lost.kill()
        kill_node(docker_client, lost)
        killed_at = time.monotonic()
        (event,) = await log.wait_for(NodeLost, lambda e: e.node == lost.node_id, timeout_s=15)
        detected_s = time.monotonic() - killed_at
        assert detected_s < NODE_TIMEOUT_S + 2.5, detected_s
        assert "no heartbeat for" in event.evidence
        await eventually(lambda: status_of(cluster, "hello"), ready_on(survivor.node_id), 20)
        await asyncio.sleep(1)
    load.assert_no_failures()
    assert len(log.of(NodeLost, lambda e: e.node == lost.node_id)) == 1


async def test_a_lost_node_with_two_of_three_replicas_costs_no_request(
    cluster: Platform, log: EventLog, docker_client: Any
) -> None:
    spec = {"name": "three", **SPEC, "min_replicas": 3, "max_replicas": 3, "initial_scale": 3}
    await call("POST", f"{cluster.api.url}/v1/functions", spec, expect=201)
    status = await eventually(lambda: status_of(cluster, "three"), lambda s: s["ready"] == 3)
    most = Counter(r["node"] for r in status["replicas"]).most_common(1)[0][0]
    (lost,) = [a for a in cluster.agents if a.node_id == most]
    (survivor,) = [a for a in cluster.agents if a.node_id != most]
    async with steady_load(f"{cluster.api.url}/fn/three/") as load:
        await asyncio.sleep(1)
        await lost.kill()
        kill_node(docker_client, lost)
        await log.wait_for(NodeLost, lambda e: e.node == lost.node_id, timeout_s=15)

        def all_on_survivor(status: dict[str, Any]) -> bool:
            ready = [r for r in status["replicas"] if r["state"] == "ready"]
            return len(ready) == 3 and all(r["node"] == survivor.node_id for r in ready)

        await eventually(lambda: status_of(cluster, "three"), all_on_survivor, 30)
        await asyncio.sleep(1)
    load.assert_no_failures()
    assert load.total > 100


async def test_a_node_that_comes_back_is_told_to_stop_what_moved_away(
    cluster: Platform, log: EventLog, docker_client: Any, bus: BusSettings
) -> None:
    status = await deploy_two(cluster, log, "hello")
    paused, survivor = cluster.agents
    moved = {r["id"] for r in status["replicas"] if r["node"] == paused.node_id}
    assert paused.process is not None
    paused.process.send_signal(signal.SIGSTOP)
    try:
        await log.wait_for(NodeLost, lambda e: e.node == paused.node_id, timeout_s=15)
        await eventually(lambda: status_of(cluster, "hello"), ready_on(survivor.node_id), 20)
        # Its container still runs: the paused agent could not stop it.
        assert containers(docker_client, **{LABEL_REPLICA: moved.copy().pop()})
    finally:
        paused.process.send_signal(signal.SIGCONT)
    (back,) = await log.wait_for(NodeReturned, lambda e: e.node == paused.node_id, timeout_s=15)
    assert set(back.moved_replicas) == moved
    stops = log.of(StopReplica, lambda c: c.node == paused.node_id)
    assert {c.replica_id for c in stops} >= moved
    deadline = time.monotonic() + 20
    while containers(docker_client, **{LABEL_NODE: paused.node_id, LABEL_FUNCTION: "hello"}):
        assert time.monotonic() < deadline, "the returned node still runs the moved replica"
        await asyncio.sleep(0.2)
    await eventually(lambda: status_of(cluster, "hello"), ready_on(survivor.node_id), 5)
    await asyncio.sleep(2)  # settled: every command is judged
    held = await assert_log_holds(bus, grace_s=0)
    assert held.checked["stop answered"] >= len(moved) and held.checked["start answered"] >= 3, held


async def test_failing_revisions_are_rolled_back_while_the_old_one_serves(
    cluster: Platform, log: EventLog
) -> None:
    await deploy_two(cluster, log, "hello")
    url = f"{cluster.api.url}/v1/functions/hello"
    base = {"name": "hello", **SPEC, "min_replicas": 2, "max_replicas": 2, "initial_scale": 2}
    async with steady_load(f"{cluster.api.url}/fn/hello/") as load:
        await call("PUT", url, {**base, "image": "shoal-test/crash:1"})
        (crash,) = await log.wait_for(
            FunctionRolledBack, lambda e: e.from_revision == 2, timeout_s=40
        )
        assert crash.to_revision == 1
        assert "code 3" in crash.reason, crash.reason
        await call("PUT", url, {**base, "image": "shoal-test/never-ready:1"})
        (stuck,) = await log.wait_for(
            FunctionRolledBack, lambda e: e.from_revision == 3, timeout_s=40
        )
        assert stuck.to_revision == 1
        assert "no ready replica within its progress deadline" in stuck.reason
        status = await eventually(
            lambda: status_of(cluster, "hello"),
            lambda s: s["revision"] == 1 and [r["revision"] for r in s["replicas"]] == [1, 1],
        )
    assert "progress deadline" in status["rollback_reason"]
    load.assert_no_failures()
    assert load.total > 100


async def test_a_drained_node_moves_its_replicas_with_no_failed_request(
    cluster: Platform, log: EventLog
) -> None:
    await deploy_two(cluster, log, "hello")
    drained, other = cluster.agents
    async with steady_load(f"{cluster.api.url}/fn/hello/") as load:
        await asyncio.sleep(1)
        await call("POST", f"{cluster.api.url}/v1/nodes/{drained.node_id}/drain", expect=202)
        await log.wait_for(NodeDrained, lambda e: e.node == drained.node_id, timeout_s=40)
        await eventually(lambda: status_of(cluster, "hello"), ready_on(other.node_id), 10)
        await asyncio.sleep(1)
    load.assert_no_failures()
    await call("POST", f"{cluster.api.url}/v1/nodes/{drained.node_id}/uncordon", expect=202)


async def test_a_replica_the_log_says_ended_is_stopped_as_drift(
    cluster: Platform, log: EventLog, bus: BusSettings, docker_client: Any
) -> None:
    status = await deploy_two(cluster, log, "hello")
    stray = status["replicas"][0]
    producer = EventProducer(bus, source="/shoal/test/liar")
    await producer.start()
    try:
        # A lost report: the log says the replica stopped, but its container runs on.
        await producer.publish(
            ReplicaStopped(
                function="hello",
                revision=1,
                replica_id=stray["id"],
                node=stray["node"],
                reason="a report that was wrong",
            )
        )
    finally:
        await producer.stop()
    (repair,) = await log.wait_for(
        DriftRepaired, lambda e: e.replica_id == stray["id"], timeout_s=20
    )
    assert repair.kind == "unknown" and "has ended" in repair.reason
    deadline = time.monotonic() + 15
    while containers(docker_client, **{LABEL_REPLICA: stray["id"]}):
        assert time.monotonic() < deadline, "the stray replica still runs"
        await asyncio.sleep(0.2)
    await eventually(
        lambda: status_of(cluster, "hello"),
        lambda s: s["ready"] == 2 and stray["id"] not in {r["id"] for r in s["replicas"]},
    )


async def test_killed_healer_scheduler_and_autoscaler_are_replaced_and_converge(
    cluster: Platform, log: EventLog, bus: BusSettings, docker_client: Any
) -> None:
    await deploy_two(cluster, log, "hello")
    lost, survivor = cluster.agents
    for part in (cluster.healer, cluster.scheduler, cluster.autoscaler):
        await part.kill()
    await lost.kill()
    kill_node(docker_client, lost)
    await asyncio.sleep(NODE_TIMEOUT_S)
    successors = [
        part.successor(f"{part.module}-2")
        for part in (cluster.healer, cluster.scheduler, cluster.autoscaler)
    ]
    try:
        for successor in successors:
            await successor.start()
        await log.wait_for(NodeLost, lambda e: e.node == lost.node_id, timeout_s=15)
        await eventually(lambda: status_of(cluster, "hello"), ready_on(survivor.node_id), 30)
        await asyncio.sleep(2)
        starts = log.of(StartReplica, lambda c: c.function == "hello")
        ended = [
            *log.of(ReplicaStopped, lambda r: r.function == "hello"),
            *log.of(ReplicaFailed, lambda r: r.function == "hello"),
        ]
        # Two at first, one to replace the lost one, and nothing started twice.
        assert len(starts) == 3, [(c.replica_id, c.node) for c in starts]
        assert len({c.replica_id for c in starts}) == 3
        assert len(log.of(NodeLost, lambda e: e.node == lost.node_id)) == 1
        assert not [r for r in ended if r.node == survivor.node_id]
    finally:
        for successor in successors:
            await successor.stop()


async def test_a_successor_healer_rolls_back_what_its_predecessor_missed(
    cluster: Platform, log: EventLog, bus: BusSettings
) -> None:
    await deploy_two(cluster, log, "hello")
    base = {"name": "hello", **SPEC, "min_replicas": 2, "max_replicas": 2, "initial_scale": 2}
    async with steady_load(f"{cluster.api.url}/fn/hello/") as load:
        await cluster.healer.kill()
        await call(
            "PUT", f"{cluster.api.url}/v1/functions/hello", {**base, "image": "shoal-test/crash:1"}
        )
        await log.wait_for(ReplicaFailed, lambda r: r.revision == 2, count=3, timeout_s=30)
        successor = cluster.healer.successor("healer-2")
        await successor.start()
        try:
            (rollback,) = await log.wait_for(
                FunctionRolledBack, lambda e: e.from_revision == 2, timeout_s=20
            )
        finally:
            await successor.stop()
    assert rollback.to_revision == 1
    (published,) = [e for e in log.events if e.data is rollback]
    assert published.source.startswith("/shoal/healer/")
    assert len(log.of(FunctionRolledBack, lambda e: e.from_revision == 2)) == 1
    load.assert_no_failures()
