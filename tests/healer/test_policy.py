"""The healer's policy as tables: lost and returning nodes, rollbacks, drift."""

from __future__ import annotations

import pytest

from events.lifecycle import ReplicaState
from events.projections.failures import FailuresProjection, RevisionRecord
from events.projections.functions import FunctionView
from events.projections.nodes import Beat, NodeView
from events.projections.replicas import ReplicaView
from events.types import FunctionSpec
from services.healer.policy import (
    Graces,
    disruption,
    drift,
    lost_nodes,
    returned_nodes,
    rollback_for,
)

SPEC = FunctionSpec(name="f", image="i")
GRACES = Graces(report_s=2.0, start_s=30.0, stop_s=30.0)


def node(
    name: str, *beats: tuple[float, set[str]], lost_at: float | None = None, joined: float = 0.0
) -> NodeView:
    view = NodeView(node=name, joined_heard_at=joined)
    view.recent = [
        Beat(seq=seq, replica_ids=frozenset(ids), heard_at=at)
        for seq, (at, ids) in enumerate(beats, start=1)
    ][-2:]
    if lost_at is not None:
        view.lost, view.lost_heard_at = True, lost_at
    return view


@pytest.mark.parametrize(
    ("last_beat", "now", "lost", "expected"),
    [
        (10.0, 12.9, False, False),  # within the 3 s timeout
        (10.0, 13.0, False, False),  # exactly at it: not yet
        (10.0, 13.1, False, True),
        (10.0, 60.0, True, False),  # already lost: said once
    ],
)
def test_a_node_is_lost_once_after_the_timeout(
    last_beat: float, now: float, lost: bool, expected: bool
) -> None:
    view = node("n1", (last_beat, set()), lost_at=20.0 if lost else None)
    found = lost_nodes([view], now, 3.0)
    assert [loss.node for loss in found] == (["n1"] if expected else [])
    if found:
        assert "no heartbeat for 3.1 s" in found[0].evidence


def test_a_restarted_healer_gives_every_node_a_fresh_timeout() -> None:
    silent_long = node("n1", (10.0, set()))
    assert lost_nodes([silent_long], 100.0, 3.0, watching_since=98.0) == []
    assert [n.node for n in lost_nodes([silent_long], 101.5, 3.0, watching_since=98.0)] == ["n1"]


def test_a_node_that_never_heartbeated_is_lost_from_its_join() -> None:
    (loss,) = lost_nodes([node("n2", joined=5.0)], 9.0, 3.0)
    assert "never heartbeated" in loss.evidence


def test_a_node_is_back_only_when_heard_after_its_loss_and_after_the_healer_began() -> None:
    (back,) = returned_nodes([node("n1", (30.0, {"r1"}), lost_at=20.0)])
    assert back.lost_for_s == 10.0
    assert returned_nodes([node("n1", (19.0, {"r1"}), lost_at=20.0)]) == []
    assert returned_nodes([node("n1", (30.0, set()), lost_at=20.0)], watching_since=31.0) == []


def function(*revisions: int, current: int, rolled_back: set[int] | None = None) -> FunctionView:
    return FunctionView(
        name="f",
        spec=SPEC,
        revision=current,
        revisions=dict.fromkeys(revisions, SPEC),
        first_revision=min(revisions),
        rolled_back=rolled_back or set(),
    )


def records(*revisions: tuple[int, float, bool, int]) -> tuple[FailuresProjection, list[int]]:
    failures = FailuresProjection()
    for rev, _, ready, fails in revisions:
        failures.revisions[("f", rev)] = RevisionRecord(
            failures=fails, ever_ready=ready, last_failure="exit 3: boom"
        )
    return failures, [rev for rev, *_ in revisions]


@pytest.mark.parametrize(
    ("revisions", "current", "now", "to", "why"),
    [
        # crashing new revision, within the deadline: back to the healthy one
        ([(1, 0, True, 0), (2, 100, False, 3)], 2, 105, 1, "failed 3 times"),
        # two failures only: not yet
        ([(1, 0, True, 0), (2, 100, False, 2)], 2, 105, None, ""),
        # never ready past the deadline
        ([(1, 0, True, 0), (2, 100, False, 0)], 2, 161, 1, "no ready replica within"),
        # never ready, deadline not reached
        ([(1, 0, True, 0), (2, 100, False, 0)], 2, 159, None, ""),
        # ready and healthy past the deadline: crashes later are the back-off's business
        ([(1, 0, True, 0), (2, 100, True, 5)], 2, 200, None, ""),
        # nothing healthy to go back to
        ([(1, 0, False, 4), (2, 100, False, 3)], 2, 105, None, ""),
        # the newest healthy revision is chosen, skipping an unhealthy one
        ([(1, 0, True, 0), (2, 10, True, 0), (3, 20, False, 0), (4, 100, False, 3)], 4, 101, 2, ""),
    ],
)
def test_rollback_table(
    revisions: list[tuple[int, float, bool, int]],
    current: int,
    now: float,
    to: int | None,
    why: str,
) -> None:
    failures, numbers = records(*revisions)
    view = function(*numbers, current=current)
    view.revision_heard_at = {rev: heard for rev, heard, *_ in revisions}
    decision = rollback_for(view, failures, now, progress_deadline_s=60, failure_threshold=3)
    if to is None:
        assert decision is None
        return
    assert decision is not None
    assert (decision.from_revision, decision.to_revision) == (current, to)
    assert why in decision.reason


def test_no_rollback_twice_nor_to_a_rolled_back_revision() -> None:
    failures, numbers = records((1, 0, True, 0), (2, 10, True, 0), (3, 100, False, 3))
    view = function(*numbers, current=3, rolled_back={3})
    view.revision_heard_at = {1: 0, 2: 10, 3: 100}
    assert rollback_for(view, failures, 101, progress_deadline_s=60, failure_threshold=3) is None
    view.rolled_back = {2}
    decision = rollback_for(view, failures, 101, progress_deadline_s=60, failure_threshold=3)
    assert decision is not None and decision.to_revision == 1


def replica(rid: str, node_name: str = "n1", **fields: object) -> ReplicaView:
    view = ReplicaView(
        replica_id=rid,
        function="f",
        revision=1,
        node=node_name,
        state=ReplicaState.READY,
        commanded=True,
        commanded_heard_at=0.0,
        reported_heard_at=1.0,
    )
    for name, value in fields.items():
        setattr(view, name, value)
    return view


def test_drift_unknown_and_missing() -> None:
    n1 = node("n1", (10.0, {"r1", "stray", "old"}), (11.0, {"r1", "stray", "old"}))
    placed = [
        replica("r1"),
        replica("gone"),
        replica("young", reported_heard_at=9.5),
        replica("leaving", leaving=True),
        replica("never-acked", reported_heard_at=None, commanded_heard_at=-40.0),
        replica("slow-start", reported_heard_at=None, commanded_heard_at=0.0),
    ]
    ended = replica("old", state=ReplicaState.STOPPED, ended_heard_at=7.0)
    known = {r.replica_id: r for r in [*placed, ended]}
    repairs = drift(n1, placed, known, {}, GRACES)
    found = {(r.kind, r.replica_id) for r in repairs}
    assert found == {
        ("unknown", "stray"),
        ("unknown", "old"),
        ("missing", "gone"),
        ("missing", "never-acked"),
    }
    reasons = {r.replica_id: r.reason for r in repairs}
    assert "never started there" in reasons["stray"]
    assert "has ended" in reasons["old"]


def test_no_drift_while_lost_with_one_heartbeat_or_inside_the_grace() -> None:
    placed = [replica("gone")]
    known = {"gone": placed[0]}
    assert drift(node("n1", (10.0, set())), placed, known, {}, GRACES) == []
    lost = node("n1", (10.0, set()), (11.0, set()), lost_at=12.0)
    assert drift(lost, placed, known, {}, GRACES) == []
    just_ended = replica("x", state=ReplicaState.STOPPED, ended_heard_at=9.5)
    reported = node("n1", (10.0, {"x"}), (11.0, {"x"}))
    assert drift(reported, [], {"x": just_ended}, {}, GRACES) == []
    assert drift(reported, [], {}, {"x": 9.0}, GRACES) == [], "a stop was just commanded"
    flicker = node("n1", (10.0, {"x"}), (11.0, set()))
    assert drift(flicker, [], {}, {}, GRACES) == []


def test_a_replica_moved_off_a_lost_node_is_quiet_for_the_stop_grace() -> None:
    moved = replica("m", state=ReplicaState.LOST, ended_heard_at=0.0)
    back = node("n1", (20.0, {"m"}), (21.0, {"m"}))
    assert drift(back, [], {"m": moved}, {}, GRACES) == []
    later = node("n1", (40.0, {"m"}), (41.0, {"m"}))
    assert [r.kind for r in drift(later, [], {"m": moved}, {}, GRACES)] == ["unknown"]


@pytest.mark.parametrize(
    ("silent", "of", "suspected"),
    [
        (1, 1, True),  # the only node silent: the healer cannot tell, it holds back
        (3, 3, True),  # every node silent at once
        (2, 3, True),  # most of them
        (1, 2, False),  # one of two: that node is lost
        (2, 4, False),  # half: nodes are lost
    ],
)
def test_the_healer_suspects_itself_when_most_nodes_go_silent_at_once(
    silent: int, of: int, suspected: bool
) -> None:
    nodes = [node(f"n{i}", (0.0 if i < silent else 9.0, set())) for i in range(of)]
    found = disruption(nodes, 10.0, 3.0)
    assert (found is not None) == suspected
    if found is not None:
        assert len(found.silent) == silent and "deaf" in found.reason


def test_lost_nodes_do_not_count_toward_a_disruption() -> None:
    gone = node("gone", (0.0, set()), lost_at=1.0)
    assert disruption([gone, node("n1", (9.0, set()))], 10.0, 3.0) is None


def test_nodes_timing_out_one_after_another_while_none_is_heard_are_no_evidence() -> None:
    """The start of a broker outage: every heartbeat stops, but the healer's tick sees the
    nodes cross the timeout a few hundred milliseconds apart."""
    first, second = node("a", (6.9, set())), node("b", (7.2, set()))
    assert disruption([first, second], 10.0, 3.0) is not None
    assert [loss.node for loss in lost_nodes([first, second], 10.0, 3.0)] == ["a"], (
        "lost_nodes alone would blame the first; the healer asks disruption() first"
    )
