"""The healer's fold of the log: placements, losses, returns and revision health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.envelope import Envelope, new_envelope
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
from services.healer.world import HealerWorld

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC = FunctionSpec(name="f", image="img:1")
CAP = NodeCapacity(cpus=2, memory_mb=1024, max_replicas=10)


def at(seconds: float, payload: Payload) -> Envelope:
    return new_envelope(payload, source="/t", at=T0 + timedelta(seconds=seconds))


def start(seconds: float, rid: str, node: str = "n1", revision: int = 1) -> Envelope:
    return at(
        seconds, StartReplica(node=node, function="f", revision=revision, replica_id=rid, spec=SPEC)
    )


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


def fold(*events: Envelope) -> HealerWorld:
    world = HealerWorld(drift_grace_s=2.0, stop_grace_s=30.0)
    for envelope in events:
        world.apply(envelope)
    return world


LOSS = at(10, NodeLost(node="n1", last_heartbeat_at="", timeout_s=3, evidence="silent"))


def test_a_loss_moves_what_ran_on_the_node_and_its_return_stops_it() -> None:
    world = fold(beat(1), start(2, "r1"), start(3, "r2", node="n2"), LOSS)
    assert set(world.placed) == {"r2"}
    assert [p.replica_id for p in world.nodes["n1"].moved] == ["r1"]
    assert returned_nodes(world.nodes.values()) == []
    world.apply(beat(12, ids=("r1",)))
    (back,) = returned_nodes(world.nodes.values())
    assert [p.replica_id for p in back.stops] == ["r1"]
    world.apply(at(12.5, NodeReturned(node="n1", lost_for_s=2.5, moved_replicas=["r1"])))
    assert world.nodes["n1"].lost_at is None and world.nodes["n1"].moved == []


def test_a_start_read_after_the_loss_it_preceded_counts_as_moved() -> None:
    world = fold(beat(1), LOSS, start(2, "r1"))
    assert "r1" not in world.placed
    assert [p.replica_id for p in world.nodes["n1"].moved] == ["r1"]


def test_revision_health_comes_from_replica_events() -> None:
    world = fold(
        at(0, FunctionDeployed(function="f", revision=1, spec=SPEC)),
        at(1, ReplicaReady(function="f", revision=1, replica_id="a", node="n1", endpoint="x")),
        at(10, FunctionUpdated(function="f", revision=2, spec=SPEC)),
        *[at(11 + n, failed(f"b{n}")) for n in range(3)],
        at(12, failed("b0")),
    )
    health = world.health["f"]
    assert health.current == 2
    assert health.revisions[1].ever_ready and not health.revisions[2].ever_ready
    assert health.revisions[2].failures == 3, "a repeated report counts once"
    decision = rollback_for("f", health, 14, progress_deadline_s=60, failure_threshold=3)
    assert decision is not None and decision.to_revision == 1
    assert "exited (exit 3)" in decision.reason
    world.apply(
        at(14, FunctionRolledBack(function="f", from_revision=2, to_revision=1, reason="r"))
    )
    assert rollback_for("f", health, 15, progress_deadline_s=60, failure_threshold=3) is None


def test_replica_events_read_before_their_deployment_still_count() -> None:
    """A successor replays topics in any order across them."""
    world = fold(
        at(11, failed("b0")),
        at(1, ReplicaReady(function="f", revision=1, replica_id="a", node="n1", endpoint="x")),
        at(12, failed("b1")),
        at(13, failed("b2")),
        at(0, FunctionDeployed(function="f", revision=1, spec=SPEC)),
        at(10, FunctionUpdated(function="f", revision=2, spec=SPEC)),
    )
    health = world.health["f"]
    assert health.current == 2 and health.revisions[2].created_at == T0.timestamp() + 10
    decision = rollback_for("f", health, 14, progress_deadline_s=60, failure_threshold=3)
    assert decision is not None and decision.to_revision == 1
