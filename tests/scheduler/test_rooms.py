"""The scheduler's own accounting over the shared world: room held per live replica, and
which nodes take or keep replicas."""

from __future__ import annotations

import msgspec

from events.envelope import new_envelope
from events.types import (
    FunctionSpec,
    NodeCapacity,
    NodeCordoned,
    NodeHeartbeat,
    NodeLost,
    Payload,
    ReplicaFailed,
    ReplicaStopped,
    StartReplica,
)
from services.scheduler.service import Scheduler
from services.scheduler.settings import Settings
from tests.support.clock import FakeClock

SPEC = FunctionSpec(name="f", image="i", cpu=0.5, memory_mb=128)
CAP = NodeCapacity(cpus=2, memory_mb=1024, max_replicas=10)


def scheduler(clock: FakeClock | None = None) -> Scheduler:
    """A scheduler past its history, hearing events live."""
    s = Scheduler(Settings.from_env({}), clock=clock or FakeClock())
    s.hearing.go_live()
    return s


def fold(s: Scheduler, *payloads: Payload) -> Scheduler:
    for payload in payloads:
        s.apply(new_envelope(payload, source="/t"))
    return s


def start(rid: str, node: str = "a") -> StartReplica:
    return StartReplica(node=node, function="f", revision=1, replica_id=rid, spec=SPEC)


def live(s: Scheduler) -> list[str]:
    return sorted(r.replica_id for r in s.world.replicas.live_of("f"))


def test_commanded_replicas_hold_room_until_they_end() -> None:
    s = fold(scheduler(), start("r1"), start("r1"))
    assert live(s) == ["r1"]
    assert s.rooms.rooms["a"].used_cpus == 0.05, "a repeated command reserves once (its request)"
    fold(s, ReplicaStopped(function="f", revision=1, replica_id="r1", node="a"))
    assert live(s) == []
    assert s.rooms.rooms["a"].used_cpus == 0.0


def test_failures_are_counted_for_back_off() -> None:
    failed = ReplicaFailed(function="f", revision=1, replica_id="r1", node="a", reason="x")
    s = fold(scheduler(), start("r1"), failed)
    assert s.world.failures.of("f", 1).since_ready == 1


def test_a_node_takes_replicas_while_heard_of_and_not_cordoned() -> None:
    clock = FakeClock()
    beat = NodeHeartbeat(node="a", seq=1, capacity=CAP, used_cpus=0, used_memory_mb=0, replicas=0)
    s = fold(scheduler(clock), beat)
    assert s.rooms.rooms["a"].schedulable
    clock.advance(11)
    s._refresh("a", clock.now())
    assert not s.rooms.rooms["a"].schedulable, "a node not heard of for 10 s takes nothing"
    fold(s, beat, NodeCordoned(node="a"))
    assert not s.rooms.rooms["a"].schedulable


def test_a_lost_node_takes_its_replicas_and_their_room_with_it() -> None:
    lost = NodeLost(node="a", last_heartbeat_at="t", timeout_s=3, evidence="silent")
    s = fold(scheduler(), start("r1"), start("r2", node="b"), lost)
    assert live(s) == ["r2"]
    assert s.rooms.rooms["a"].used_cpus == 0.0 and s.rooms.rooms["a"].evacuating


def test_a_heartbeat_tells_which_replicas_are_in_use() -> None:
    beat = NodeHeartbeat(
        node="a",
        seq=1,
        capacity=CAP,
        used_cpus=0,
        used_memory_mb=0,
        replicas=2,
        replica_ids=["r1", "r2"],
        busy_ids=["r2"],
    )
    s = fold(scheduler(), beat)
    assert s.rooms.rooms["a"].busy == {"r2"}
    fold(s, NodeHeartbeat(**{**msgspec.structs.asdict(beat), "seq": 2, "busy_ids": []}))
    assert s.rooms.rooms["a"].busy == frozenset(), "the newest heartbeat says"
