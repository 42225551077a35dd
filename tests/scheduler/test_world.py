"""The scheduler's world: what it commanded, where, and the room it took."""

from __future__ import annotations

from events.envelope import new_envelope
from events.types import (
    FunctionSpec,
    NodeCapacity,
    NodeCordoned,
    NodeHeartbeat,
    NodeLost,
    ReplicaFailed,
    ReplicaStopped,
    StartReplica,
)
from services.scheduler.world import World

SPEC = FunctionSpec(name="f", image="i", cpu=0.5, memory_mb=128)
CAP = NodeCapacity(cpus=2, memory_mb=1024, max_replicas=10)


def fold(world: World, *payloads: object, now: float = 0.0) -> World:
    for payload in payloads:
        world.apply(new_envelope(payload, source="/t"), now=now, stale_s=10)  # type: ignore[arg-type]
    return world


def start(rid: str, node: str = "a") -> StartReplica:
    return StartReplica(node=node, function="f", revision=1, replica_id=rid, spec=SPEC)


def test_commanded_replicas_are_indexed_by_function_until_they_end() -> None:
    world = fold(World(), start("r1"), start("r1"))
    assert [r.replica_id for r in world.replicas_of("f")] == ["r1"]
    assert world.rooms["a"].used_cpus == 0.5, "a repeated command reserves once"
    fold(world, ReplicaStopped(function="f", revision=1, replica_id="r1", node="a"))
    assert world.replicas_of("f") == []
    assert world.rooms["a"].used_cpus == 0.0


def test_failures_are_counted_for_back_off() -> None:
    world = fold(
        World(),
        start("r1"),
        ReplicaFailed(function="f", revision=1, replica_id="r1", node="a", reason="x"),
    )
    assert world.failures["f"].count == 1


def test_a_node_is_schedulable_while_it_heartbeats_and_is_not_cordoned() -> None:
    beat = NodeHeartbeat(node="a", seq=1, capacity=CAP, used_cpus=0, used_memory_mb=0, replicas=0)
    world = fold(World(), beat)
    assert world.rooms["a"].schedulable
    world.refresh_schedulable("a", now=world.heartbeat_at["a"] + 11, stale_s=10)
    assert not world.rooms["a"].schedulable, "a stale heartbeat makes it unschedulable"
    fold(world, beat, NodeCordoned(node="a"))
    assert not world.rooms["a"].schedulable


def test_a_lost_node_takes_its_replicas_out_of_the_world() -> None:
    world = fold(
        World(),
        start("r1"),
        start("r2", node="b"),
        NodeLost(node="a", last_heartbeat_at="t", timeout_s=3, evidence="silent"),
    )
    assert [r.replica_id for r in world.replicas_of("f")] == ["r2"]
