"""The fold of history into cluster state: tables and properties."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import Envelope, new_envelope
from events.state import ClusterState, apply
from events.types import (
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
    Payload,
    PlacementPending,
    ReplicaDraining,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    ScaleDecision,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC1 = FunctionSpec(name="hello", image="img:1")
SPEC2 = FunctionSpec(name="hello", image="img:2")
CAP = NodeCapacity(cpus=2, memory_mb=1024, max_replicas=10)


def at(seconds: float, payload: Payload) -> Envelope:
    return new_envelope(payload, source="/t", at=T0 + timedelta(seconds=seconds))


def replica(kind: type, rid: str = "r1", revision: int = 1, **extra: object) -> Payload:
    return kind(function="hello", revision=revision, replica_id=rid, node="n1", **extra)


def fold(events: list[Envelope]) -> ClusterState:
    state = ClusterState()
    for envelope in events:
        apply(state, envelope)
    return state


SCENARIO = [
    at(0, NodeJoined(node="n1", address="127.0.0.1", runtime="docker", capacity=CAP)),
    at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1)),
    at(
        2,
        ScaleDecision(
            function="hello", revision=1, previous=0, desired=2, panic=False, reason="initial scale"
        ),
    ),
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


def test_a_scenario_folds_into_the_state_a_user_expects() -> None:
    state = fold(SCENARIO)
    hello = state.functions["hello"]
    assert (hello.revision, hello.spec.image, sorted(hello.revisions)) == (2, "img:2", [1, 2])
    assert hello.desired == 2 and hello.last_decision is not None
    assert {r.replica_id: r.state for r in state.replicas.values()} == {
        "r1": "draining",
        "r3": "ready",
    }
    assert state.ended_replicas == {"r2": "failed"}
    node = state.nodes["n1"]
    assert node.cordoned and not node.lost and node.used_cpus == 0.5
    assert state.as_of == T0 + timedelta(seconds=12)


def test_a_rollback_makes_the_named_revision_current() -> None:
    state = fold(
        [
            *SCENARIO,
            at(
                13,
                FunctionRolledBack(
                    function="hello", from_revision=2, to_revision=1, reason="crashing"
                ),
            ),
        ]
    )
    assert state.functions["hello"].revision == 1
    assert state.functions["hello"].spec.image == "img:1"
    assert state.functions["hello"].rollback_reason == "crashing"


def test_a_late_event_about_an_ended_replica_changes_nothing() -> None:
    state = fold(
        [
            *SCENARIO,
            at(13, replica(ReplicaStopped)),
            at(14, replica(ReplicaReady, endpoint="http://127.0.0.1:1")),
        ]
    )
    assert "r1" not in state.replicas


def test_a_lost_node_takes_its_replicas_with_it() -> None:
    state = fold(
        [
            *SCENARIO,
            at(13, NodeLost(node="n1", last_heartbeat_at="t", timeout_s=3, evidence="silent")),
        ]
    )
    assert state.nodes["n1"].lost
    assert state.replicas == {}


def test_a_deleted_function_can_be_deployed_again_from_revision_one() -> None:
    state = fold(
        [
            *SCENARIO,
            at(13, FunctionDeleted(function="hello")),
            at(14, FunctionDeployed(function="hello", revision=1, spec=SPEC1)),
        ]
    )
    assert not state.functions["hello"].deleted
    assert state.functions["hello"].revisions == {1: SPEC1}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(SCENARIO) - 1), max_size=8))
def test_duplicated_events_change_nothing(duplicates: list[int]) -> None:
    with_duplicates = list(SCENARIO)
    for index in sorted(duplicates, reverse=True):
        with_duplicates.insert(index + 1, SCENARIO[index])
    assert fold(with_duplicates) == fold(SCENARIO)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, len(SCENARIO)))
def test_a_prefix_then_the_rest_equals_the_whole(split: int) -> None:
    state = fold(SCENARIO[:split])
    resumed = copy.deepcopy(state)
    for envelope in SCENARIO[split:]:
        apply(resumed, envelope)
    assert resumed == fold(SCENARIO)


def test_a_decision_read_before_its_function_is_kept_for_it() -> None:
    decision = at(
        2,
        ScaleDecision(function="hello", revision=1, previous=0, desired=3, panic=False, reason="r"),
    )
    state = fold([decision, at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1))])
    assert state.functions["hello"].desired == 3
    assert state.functions["hello"].last_decision == decision.data


def beat(seconds: float, seq: int) -> Envelope:
    return at(
        seconds,
        NodeHeartbeat(node="n1", seq=seq, capacity=CAP, used_cpus=0, used_memory_mb=0, replicas=1),
    )


LOSS = at(10, NodeLost(node="n1", last_heartbeat_at="", timeout_s=3, evidence="silent"))


def test_news_from_before_a_loss_read_late_does_not_undo_it() -> None:
    """Heartbeats and replica events travel on other topics than NodeLost: a reader may
    get them after it, and they must not bring the node or its replicas back."""
    early = [
        at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1)),
        at(5, replica(ReplicaReady, endpoint="http://127.0.0.1:1")),
    ]
    state = fold([*early[:1], LOSS, beat(6, 6), beat(7, 7), early[1]])
    assert state.nodes["n1"].lost
    assert state.replicas == {}
    assert state.ended_replicas["r1"] == "lost"
    back = fold([*early, LOSS, beat(11, 11)])
    assert not back.nodes["n1"].lost


def test_status_counts_failures_and_pending_until_a_replica_is_ready() -> None:
    state = fold(
        [
            at(1, FunctionDeployed(function="hello", revision=1, spec=SPEC1)),
            at(2, replica(ReplicaFailed, "r1", reason="exited", exit_code=3)),
            at(3, replica(ReplicaFailed, "r2", reason="exited", exit_code=3)),
            at(3, replica(ReplicaFailed, "r2", reason="exited", exit_code=3)),
            at(
                4,
                PlacementPending(
                    function="hello", revision=1, pending=1, reason="crash loop back-off"
                ),
            ),
        ]
    )
    view = state.functions["hello"]
    assert (view.failures, view.last_failure) == (2, "exited (exit 3)")
    assert (view.pending, view.pending_reason) == (1, "crash loop back-off")
    apply(state, at(5, replica(ReplicaReady, "r3", endpoint="http://127.0.0.1:1")))
    assert (view.failures, view.pending) == (0, 0)
