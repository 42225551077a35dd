"""The projections: the fold of history into the world, scenario by scenario."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import Envelope, new_envelope
from events.lifecycle import ReplicaState
from events.projections.snapshot import snapshot
from events.projections.world import World
from events.types import (
    DriftRepaired,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    NodeCapacity,
    NodeCordoned,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeReturned,
    Payload,
    PlacementPending,
    ReplicaDraining,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    ScaleDecision,
    ScaleRequested,
    StartReplica,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC1 = FunctionSpec(name="hello", image="img:1")
SPEC2 = FunctionSpec(name="hello", image="img:2")
CAP = NodeCapacity(cpus=2, memory_mb=1024, max_replicas=10)


def at(seconds: float, payload: Payload) -> Envelope:
    return new_envelope(payload, source="/t", at=T0 + timedelta(seconds=seconds))


def replica(kind: type, rid: str = "r1", revision: int = 1, **extra: object) -> Payload:
    return kind(function="hello", revision=revision, replica_id=rid, node="n1", **extra)


def fold(events: list[Envelope]) -> World:
    world = World()
    for envelope in events:
        world.apply(envelope, envelope.time.timestamp())
    return world


def states(world: World) -> dict[str, str]:
    return {r.replica_id: str(r.state) for r in world.replicas.live()}


def decision(seconds: float, desired: int, revision: int = 1) -> Envelope:
    return at(
        seconds,
        ScaleDecision(
            function="hello",
            revision=revision,
            previous=0,
            desired=desired,
            panic=False,
            reason="r",
        ),
    )


SCENARIO = [
    at(0, NodeJoined(node="n1", address="127.0.0.1", runtime="docker", capacity=CAP)),
    at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1)),
    decision(2, 2),
    at(3, replica(ReplicaStarting)),
    at(4, replica(ReplicaReady, endpoint="http://127.0.0.1:1")),
    at(5, replica(ReplicaStarting, "r2")),
    at(6, replica(ReplicaFailed, "r2", reason="exited")),
    at(7, FunctionUpdated(function="hello", revision=2, spec=SPEC2)),
    at(8, replica(ReplicaStarting, "r3", revision=2)),
    at(9, replica(ReplicaReady, "r3", revision=2, endpoint="http://127.0.0.1:3")),
    at(10, replica(ReplicaDraining)),
    at(
        11,
        NodeHeartbeat(
            node="n1", seq=1, capacity=CAP, used_cpus=0.5, used_memory_mb=128, replicas=1
        ),
    ),
    at(12, NodeCordoned(node="n1")),
]


def test_a_scenario_folds_into_the_world_a_user_expects() -> None:
    world = fold(SCENARIO)
    hello = world.functions.functions["hello"]
    assert (hello.revision, hello.spec.image, sorted(hello.revisions)) == (2, "img:2", [1, 2])
    assert hello.desired == 2 and hello.last_decision is not None
    assert states(world) == {"r1": "draining", "r3": "ready"}
    assert world.replicas.get("r2") is not None
    assert world.replicas.replicas["r2"].state is ReplicaState.FAILED
    node = world.nodes.nodes["n1"]
    assert node.cordoned and not node.lost and node.used_cpus == 0.5
    assert world.as_of == T0 + timedelta(seconds=12)


def test_a_rollback_makes_the_named_revision_current() -> None:
    rolled = FunctionRolledBack(function="hello", from_revision=2, to_revision=1, reason="crashing")
    world = fold([*SCENARIO, at(13, rolled)])
    hello = world.functions.functions["hello"]
    assert (hello.revision, hello.spec.image, hello.rollback_reason) == (1, "img:1", "crashing")
    assert hello.rolled_back == {2}


def test_a_rollback_and_the_revisions_around_it_fold_the_same_in_any_order() -> None:
    """The healer's rollback stands on another topic than the revisions it names, so a
    reader may meet it before the revision it rolls back or after a newer one."""
    update = FunctionUpdated(function="hello", revision=2, spec=SPEC2)
    rolled = at(
        13, FunctionRolledBack(function="hello", from_revision=2, to_revision=1, reason="x")
    )
    newer = at(14, FunctionUpdated(function="hello", revision=3, spec=SPEC2))
    early = [e for e in SCENARIO if not isinstance(e.data, FunctionUpdated)]
    before = fold([*early[:3], rolled, at(7, update), *early[3:]]).functions.functions["hello"]
    assert (before.revision, before.rolled_back) == (1, {2})
    for events in ([*SCENARIO, rolled, newer], [*SCENARIO, newer, rolled]):
        hello = fold(events).functions.functions["hello"]
        assert (hello.revision, hello.rolled_back) == (3, {2})


def test_a_late_event_about_an_ended_replica_changes_nothing() -> None:
    world = fold(
        [
            *SCENARIO,
            at(13, replica(ReplicaStopped)),
            at(14, replica(ReplicaReady, endpoint="http://127.0.0.1:1")),
        ]
    )
    assert "r1" not in states(world)


def lost(seconds: float, generation: int = 0) -> Envelope:
    return at(
        seconds,
        NodeLost(
            node="n1", last_heartbeat_at="t", timeout_s=3, evidence="silent", generation=generation
        ),
    )


def test_a_lost_node_takes_the_replicas_of_its_generation_with_it() -> None:
    world = fold([*SCENARIO, lost(13)])
    assert world.nodes.nodes["n1"].lost and world.nodes.nodes["n1"].generation == 1
    assert states(world) == {}
    assert sorted(r.replica_id for r in world.replicas.moved_from("n1", 0)) == ["r1", "r3"]


def start(rid: str, generation: int) -> StartReplica:
    return StartReplica(
        node="n1",
        function="hello",
        revision=1,
        replica_id=rid,
        spec=SPEC1,
        node_generation=generation,
    )


def test_a_loss_read_before_or_after_the_replicas_it_ends_ends_the_same_ones() -> None:
    """NodeLost names the generation it ends: what was placed before the loss ends, what
    was placed after the node came back does not, whatever topic is read first."""
    old, new = at(5, start("old", 0)), at(20, start("new", 1))
    loss, back = lost(10), at(15, NodeReturned(node="n1", lost_for_s=5))
    for order in ([old, loss, back, new], [loss, back, new, old], [new, old, loss, back]):
        world = fold(order)
        assert states(world) == {"new": "commanded"}, order
        assert world.replicas.replicas["old"].state is ReplicaState.LOST


def test_only_node_returned_brings_a_lost_node_back_not_a_heartbeat() -> None:
    beat = at(
        11, NodeHeartbeat(node="n1", seq=9, capacity=CAP, used_cpus=0, used_memory_mb=0, replicas=0)
    )
    assert fold([*SCENARIO, lost(10), beat]).nodes.nodes["n1"].lost
    returned = at(12, NodeReturned(node="n1", lost_for_s=2))
    assert not fold([*SCENARIO, lost(10), beat, returned]).nodes.nodes["n1"].lost


def test_a_deleted_function_deployed_again_is_a_new_incarnation() -> None:
    world = fold(
        [
            *SCENARIO,
            at(13, FunctionDeleted(function="hello")),
            at(14, FunctionDeployed(function="hello", revision=3, spec=SPEC1)),
        ]
    )
    hello = world.functions.functions["hello"]
    assert not hello.deleted and hello.revisions == {3: SPEC1}
    assert hello.desired is None, "the old incarnation's decisions are not this one's"
    assert world.functions.next_revision("hello") == 4


def test_a_decision_read_before_its_function_is_kept_for_it() -> None:
    early = decision(2, 3)
    world = fold([early, at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1))])
    assert world.functions.functions["hello"].desired == 3
    assert world.functions.functions["hello"].last_decision == early.data


def test_a_duplicate_deployment_does_not_clear_a_pin() -> None:
    deployed = at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1))
    pinned = at(2, ScaleRequested(function="hello", replicas=4))
    world = fold([deployed, pinned])
    world.seen = type(world.seen)(10)  # forget the ids: the fold itself must still know it
    world.apply(deployed, 3.0)
    assert world.functions.functions["hello"].pinned_replicas == 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(SCENARIO) - 1), max_size=8))
def test_duplicated_events_change_nothing(duplicates: list[int]) -> None:
    with_duplicates = list(SCENARIO)
    for index in sorted(duplicates, reverse=True):
        with_duplicates.insert(index + 1, SCENARIO[index])
    assert snapshot(fold(with_duplicates)) == snapshot(fold(SCENARIO))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, len(SCENARIO)))
def test_a_prefix_then_the_rest_equals_the_whole(split: int) -> None:
    world = fold(SCENARIO[:split])
    resumed = copy.deepcopy(world)
    for envelope in SCENARIO[split:]:
        resumed.apply(envelope, 0.0)
    assert snapshot(resumed) == snapshot(fold(SCENARIO))


def test_status_counts_failures_until_a_replica_is_ready_and_pending_until_placed() -> None:
    pending = PlacementPending(function="hello", revision=1, pending=1, reason="back-off")
    world = fold(
        [
            at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1)),
            at(2, replica(ReplicaFailed, "r1", reason="exited", exit_code=3)),
            at(3, replica(ReplicaFailed, "r2", reason="exited", exit_code=3)),
            at(3, replica(ReplicaFailed, "r2", reason="exited", exit_code=3)),
            at(4, pending),
        ]
    )
    failures, view = world.failures.of_function("hello"), world.functions.functions["hello"]
    assert (failures.since_ready, failures.last) == (2, "exited (exit 3)")
    assert world.failures.of("hello", 1).failures == 2
    assert (view.pending, view.pending_reason) == (1, "back-off")
    world.apply(at(5, replica(ReplicaReady, "r3", endpoint="http://127.0.0.1:1")), 5.0)
    placed = PlacementPending(function="hello", revision=1, pending=0, reason="placed")
    world.apply(at(6, placed), 6.0)
    assert (world.failures.of_function("hello").since_ready, view.pending) == (0, 0)
    assert world.failures.of("hello", 1).ever_ready


def test_drift_repairs_end_a_missing_replica_and_mark_an_unknown_one_leaving() -> None:
    missing = DriftRepaired(node="n1", kind="missing", replica_id="r1", reason="gone")
    unknown = DriftRepaired(node="n1", kind="unknown", replica_id="zz", reason="stray")
    world = fold([*SCENARIO, at(13, missing), at(14, unknown)])
    assert world.replicas.replicas["r1"].state is ReplicaState.MISSING
    assert "zz" in world.replicas.leave_unknown
    assert "zz" not in world.replicas.replicas


def test_a_report_on_a_replica_commanded_onto_another_node_changes_nothing() -> None:
    """A node cannot take over another node's replica: a ReplicaReady naming node n2 for
    a replica placed on n1 (say, with an endpoint of its choosing) is refused."""
    forged = ReplicaReady(
        function="hello", revision=1, replica_id="r9", node="n2", endpoint="http://evil:1"
    )
    world = fold([at(1, start("r9", 0)), at(2, forged)])
    view = world.replicas.replicas["r9"]
    assert (view.state, view.endpoint, view.node) == (ReplicaState.COMMANDED, "", "n1")
    honest = replica(ReplicaReady, "r9", endpoint="http://127.0.0.1:2")
    world = fold([at(1, start("r9", 0)), at(2, forged), at(3, honest)])
    assert world.replicas.replicas["r9"].endpoint == "http://127.0.0.1:2"
