"""The healer's policy as tables: lost and returning nodes, rollbacks, drift."""

from __future__ import annotations

import pytest

from services.healer.policy import (
    FunctionHealth,
    Heartbeat,
    NodeWatch,
    Placed,
    RevisionHealth,
    drift,
    lost_nodes,
    returned_nodes,
    rollback_for,
)


def watch(node: str, *beats: tuple[float, set[str]], lost_at: float | None = None) -> NodeWatch:
    w = NodeWatch(node=node, joined_at=0.0, lost_at=lost_at)
    for seq, (at, ids) in enumerate(beats, start=1):
        w.heard(Heartbeat(at=at, seq=seq, replica_ids=frozenset(ids)))
    return w


@pytest.mark.parametrize(
    ("last_beat", "now", "lost_at", "expected"),
    [
        (10.0, 12.9, None, False),  # within the 3 s timeout
        (10.0, 13.0, None, False),  # exactly at it: not yet
        (10.0, 13.1, None, True),
        (10.0, 60.0, 20.0, False),  # already lost: said once
    ],
)
def test_a_node_is_lost_once_after_the_timeout(
    last_beat: float, now: float, lost_at: float | None, expected: bool
) -> None:
    found = lost_nodes([watch("n1", (last_beat, set()), lost_at=lost_at)], now, 3.0)
    assert [loss.node for loss in found] == (["n1"] if expected else [])
    if found:
        assert found[0].last_heartbeat_at == last_beat
        assert "no heartbeat for 3.1 s" in found[0].evidence


def test_a_restarted_healer_gives_every_node_a_fresh_timeout() -> None:
    silent_long = watch("n1", (10.0, set()))
    assert lost_nodes([silent_long], 100.0, 3.0, watching_since=98.0) == []
    assert [n.node for n in lost_nodes([silent_long], 101.5, 3.0, watching_since=98.0)] == ["n1"]


def test_a_node_that_never_heartbeated_is_lost_from_its_join() -> None:
    (loss,) = lost_nodes([NodeWatch(node="n2", joined_at=5.0)], 9.0, 3.0)
    assert "never heartbeated" in loss.evidence


def test_heartbeats_out_of_order_do_not_move_last_seen_back() -> None:
    w = watch("n1", (10.0, set()), (8.0, set()))
    assert w.last_seen == 10.0


def placed(rid: str, node: str = "n1", **kw: object) -> Placed:
    fields: dict[str, object] = {
        "replica_id": rid,
        "function": "f",
        "revision": 1,
        "node": node,
        "commanded_at": 0.0,
        "acknowledged_at": 1.0,
        "ready": True,
    }
    fields.update(kw)
    return Placed(**fields)  # type: ignore[arg-type]


def test_a_returning_node_is_told_to_stop_what_moved_away() -> None:
    w = watch("n1", (30.0, {"r1"}), lost_at=20.0)
    w.moved = [placed("r1"), placed("r2")]
    (back,) = returned_nodes([w])
    assert back.lost_for_s == 10.0
    assert [r.replica_id for r in back.stops] == ["r1", "r2"]
    stale = watch("n1", (19.0, {"r1"}), lost_at=20.0)
    assert returned_nodes([stale]) == []


def health(*revisions: tuple[int, float, bool, int], current: int) -> FunctionHealth:
    return FunctionHealth(
        current=current,
        revisions={
            rev: RevisionHealth(
                created_at=created, ever_ready=ready, failures=fails, last_failure="exit 3: boom"
            )
            for rev, created, ready, fails in revisions
        },
    )


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
    decision = rollback_for(
        "f",
        health(*revisions, current=current),
        now,
        progress_deadline_s=60,
        failure_threshold=3,
    )
    if to is None:
        assert decision is None
        return
    assert decision is not None
    assert (decision.from_revision, decision.to_revision) == (current, to)
    assert why in decision.reason


def test_no_rollback_twice_nor_to_a_rolled_back_revision() -> None:
    h = health((1, 0, True, 0), (2, 10, True, 0), (3, 100, False, 3), current=3)
    h.rolled_back = {3}
    assert rollback_for("f", h, 101, progress_deadline_s=60, failure_threshold=3) is None
    h = health((1, 0, True, 0), (2, 10, True, 0), (3, 100, False, 3), current=3)
    h.rolled_back = {2}
    decision = rollback_for("f", h, 101, progress_deadline_s=60, failure_threshold=3)
    assert decision is not None and decision.to_revision == 1


def test_drift_unknown_and_missing() -> None:
    w = watch("n1", (10.0, {"r1", "stray", "old"}), (11.0, {"r1", "stray", "old"}))
    wanted = {
        "r1": placed("r1"),
        "gone": placed("gone"),
        "young": placed("young", acknowledged_at=9.5),
        "leaving": placed("leaving", leaving=True),
        "elsewhere": placed("elsewhere", node="n2"),
        "never-acked": placed("never-acked", acknowledged_at=None, commanded_at=-40.0),
        "slow-start": placed("slow-start", acknowledged_at=None, commanded_at=0.0),
    }
    repairs = drift(w, wanted, {"old": 9.0}, grace_s=2.0, start_grace_s=30.0)
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
    wanted = {"gone": placed("gone")}
    one = watch("n1", (10.0, set()))
    assert drift(one, wanted, {}, grace_s=2.0, start_grace_s=30.0) == []
    lost = watch("n1", (10.0, set()), (11.0, set()), lost_at=12.0)
    assert drift(lost, wanted, {}, grace_s=2.0, start_grace_s=30.0) == []
    just_ended = watch("n1", (10.0, {"x"}), (11.0, {"x"}))
    assert drift(just_ended, {}, {"x": 10.5}, grace_s=2.0, start_grace_s=30.0) == []
    flicker = watch("n1", (10.0, {"x"}), (11.0, set()))
    assert drift(flicker, {}, {}, grace_s=2.0, start_grace_s=30.0) == []
