"""The healer's decisions over the shared projections: losses, returns, revision health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.envelope import Envelope, new_envelope
from events.projections.world import World
from events.types import (
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    NodeCapacity,
    NodeHeartbeat,
    NodeLost,
    NodeReturned,
    Payload,
    ReplicaFailed,
    ReplicaReady,
    StartReplica,
)
from services.healer.policy import returned_nodes, rollback_for

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC = FunctionSpec(name="f", image="img:1")
CAP = NodeCapacity(cpus=2, memory_mb=1024, max_replicas=10)


def at(seconds: float, payload: Payload) -> Envelope:
    return new_envelope(payload, source="/t", at=T0 + timedelta(seconds=seconds))


def start(seconds: float, rid: str, node: str = "n1") -> Envelope:
    return at(seconds, StartReplica(node=node, function="f", revision=1, replica_id=rid, spec=SPEC))


def beat(seconds: float, node: str = "n1", ids: tuple[str, ...] = ()) -> Envelope:
    return at(
        seconds,
        NodeHeartbeat(
            node=node,
            seq=int(seconds),
            capacity=CAP,
            used_cpus=0,
            used_memory_mb=0,
            replicas=len(ids),
            replica_ids=list(ids),
        ),
    )


def failed(rid: str) -> ReplicaFailed:
    return ReplicaFailed(
        function="f", revision=2, replica_id=rid, node="n1", reason="exited", exit_code=3
    )


def fold(*events: tuple[float, Envelope]) -> World:
    """Events with the time this healer heard each."""
    world = World()
    for heard, envelope in events:
        world.apply(envelope, heard)
    return world


LOSS = at(10, NodeLost(node="n1", last_heartbeat_at="", timeout_s=3, evidence="silent"))


def test_a_loss_moves_what_ran_on_the_node_and_its_return_stops_it() -> None:
    world = fold((1, beat(1)), (2, start(2, "r1")), (3, start(3, "r2", node="n2")), (10, LOSS))
    assert [r.replica_id for r in world.replicas.live()] == ["r2"]
    assert [r.replica_id for r in world.replicas.moved_from("n1", 0)] == ["r1"]
    assert returned_nodes(world.nodes.nodes.values()) == []
    world.apply(beat(12, ids=("r1",)), 12)
    (back,) = returned_nodes(world.nodes.nodes.values())
    assert back.node == "n1" and back.lost_for_s == 2
    world.apply(at(12.5, NodeReturned(node="n1", lost_for_s=2.5, moved_replicas=["r1"])), 12.5)
    assert not world.nodes.nodes["n1"].lost and returned_nodes(world.nodes.nodes.values()) == []


def test_a_start_read_after_the_loss_it_preceded_counts_as_moved() -> None:
    world = fold((1, beat(1)), (10, LOSS), (11, start(2, "r1")))
    assert list(world.replicas.live()) == []
    assert [r.replica_id for r in world.replicas.moved_from("n1", 0)] == ["r1"]


def ready(rid: str, revision: int = 1) -> ReplicaReady:
    return ReplicaReady(function="f", revision=revision, replica_id=rid, node="n1", endpoint="x")


def test_revision_health_comes_from_replica_events() -> None:
    world = fold(
        (0, at(0, FunctionDeployed(function="f", revision=1, spec=SPEC))),
        (1, at(1, ready("a"))),
        (10, at(10, FunctionUpdated(function="f", revision=2, spec=SPEC))),
        *[(11 + n, at(11 + n, failed(f"b{n}"))) for n in range(3)],
        (12, at(12, failed("b0"))),
    )
    view = world.functions.functions["f"]
    assert view.revision == 2
    assert world.failures.of("f", 1).ever_ready and not world.failures.of("f", 2).ever_ready
    assert world.failures.of("f", 2).failures == 3, "a repeated report counts once"
    decision = rollback_for(view, world.failures, 14, progress_deadline_s=60, failure_threshold=3)
    assert decision is not None and decision.to_revision == 1
    assert "exited (exit 3)" in decision.reason
    rolled = FunctionRolledBack(function="f", from_revision=2, to_revision=1, reason="r")
    world.apply(at(14, rolled), 14)
    assert (
        rollback_for(view, world.failures, 15, progress_deadline_s=60, failure_threshold=3) is None
    )


def test_replica_events_read_before_their_deployment_still_count() -> None:
    """A successor replays topics in any order across them."""
    world = fold(
        (20, at(11, failed("b0"))),
        (20, at(1, ready("a"))),
        (20, at(12, failed("b1"))),
        (20, at(13, failed("b2"))),
        (20, at(0, FunctionDeployed(function="f", revision=1, spec=SPEC))),
        (20, at(10, FunctionUpdated(function="f", revision=2, spec=SPEC))),
    )
    view = world.functions.functions["f"]
    assert view.revision == 2 and view.revision_heard_at[2] == 20
    decision = rollback_for(view, world.failures, 24, progress_deadline_s=60, failure_threshold=3)
    assert decision is not None and decision.to_revision == 1
