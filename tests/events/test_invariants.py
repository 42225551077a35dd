"""The log's invariants (`shoal audit --check`): a clean history passes every rule, and each
kind of wrong history is caught by its rule, naming the events involved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from events.envelope import Envelope, new_envelope
from events.invariants import RULES, check
from events.types import (
    DrainReplica,
    FunctionDeployed,
    FunctionSpec,
    FunctionUpdated,
    NodeLost,
    Payload,
    ReplicaEvent,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    ScaleDecision,
    StartReplica,
    StopReplica,
)
from services.cli.history import check_log

T0 = datetime(2026, 11, 26, 12, tzinfo=UTC)
SPEC = FunctionSpec(name="f", image="shoal-test/hello:1")


def at(seconds: float, payload: Payload) -> Envelope:
    return new_envelope(payload, source="/shoal/test/1", at=T0 + timedelta(seconds=seconds))


def start(replica: str, node: str = "n1", generation: int = 0) -> StartReplica:
    return StartReplica(
        node=node,
        function="f",
        revision=1,
        replica_id=replica,
        spec=SPEC,
        node_generation=generation,
    )


def decision(desired: int, epoch: int = 0) -> ScaleDecision:
    return ScaleDecision(
        function="f",
        revision=1,
        previous=0,
        desired=desired,
        panic=False,
        reason="test",
        epoch=epoch,
    )


def report(kind: type[ReplicaEvent], replica: str, node: str = "n1") -> ReplicaEvent:
    if kind is ReplicaReady:
        return ReplicaReady(
            function="f", revision=1, replica_id=replica, node=node, endpoint="http://x:1"
        )
    return kind(function="f", revision=1, replica_id=replica, node=node)


def clean() -> list[Envelope]:
    return [
        at(0, FunctionDeployed(function="f", revision=1, spec=SPEC)),
        by("/shoal/autoscaler/a", 0.5, decision(5, epoch=1)),
        at(1, start("r1")),
        at(1.1, report(ReplicaStarting, "r1")),
        at(1.5, report(ReplicaReady, "r1")),
        at(2, start("r2", node="n2")),
        at(50, NodeLost(node="n2", last_heartbeat_at="", timeout_s=3, evidence="silent")),
        at(60, FunctionUpdated(function="f", revision=2, spec=SPEC)),
        at(60.5, FunctionUpdated(function="f", revision=2, spec=SPEC)),  # a scaling change
        at(70, StopReplica(node="n1", function="f", replica_id="r1")),
        at(70.2, report(ReplicaStopped, "r1")),
        at(200, start("r3")),  # too young to judge
    ]


def test_a_clean_history_passes_every_rule() -> None:
    found = check(clean())
    assert found.violations == []
    assert set(found.checked) == set(RULES) and all(found.checked.values()), found.checked


def by(source: str, seconds: float, payload: Payload) -> Envelope:
    return new_envelope(payload, source=source, at=T0 + timedelta(seconds=seconds))


def test_each_wrong_history_is_caught_by_its_rule() -> None:
    history = clean()
    a, b = "/shoal/scheduler/a", "/shoal/scheduler/b"
    leaders = [
        by(a, 6, msgspec.structs.replace(start("r5", node="n3"), epoch=1)),
        by(b, 7, msgspec.structs.replace(start("r6", node="n3"), epoch=2)),
        by(a, 8, msgspec.structs.replace(start("r7", node="n3"), epoch=1)),  # fenced: unseen
        by(a, 9, msgspec.structs.replace(start("r8", node="n4"), epoch=1)),  # obeyed: deposed
    ]
    history += [*leaders, *(by(a, 10, report(ReplicaStarting, r, "n3")) for r in ("r5", "r6"))]
    history.append(by(a, 10, report(ReplicaStarting, "r8", "n4")))
    twice = at(3, start("r1", node="n2"))
    unanswered = at(4, start("r4"))
    forged = at(5, report(ReplicaReady, "ghost"))
    back = at(80, FunctionUpdated(function="f", revision=1, spec=SPEC))
    stop = at(90, StopReplica(node="n1", function="f", replica_id="r4"))
    over = [at(20, decision(1)), at(30, start("r9")), at(30.5, report(ReplicaStarting, "r9"))]
    over.append(at(31, decision(8)))
    standby = by("/shoal/autoscaler/c", 11, msgspec.structs.replace(decision(5), function="g"))
    found = check([*history, twice, unanswered, forged, back, stop, *over, standby, history[2]])
    by_rule = {v.rule: v for v in found.violations}
    assert sorted(by_rule) == sorted(RULES), found.violations
    assert set(by_rule["started once"].events) == {history[2].id, twice.id}
    assert by_rule["start answered"].events == (unanswered.id,)
    assert by_rule["reports follow commands"].events == (forged.id,)
    assert by_rule["revisions move on"].events[-1] == back.id
    assert by_rule["stop answered"].events == (stop.id,)
    assert by_rule["deposed not obeyed"].events == (leaders[3].id,)
    assert by_rule["within desired and surge"].events == (over[1].id,)
    assert by_rule["decided by a leader"].events == (standby.id,)
    assert len(found.violations) == len(RULES), "a command delivered twice counts once"


def test_a_replica_drained_in_the_round_that_starts_its_successor_leaves_room() -> None:
    rollout = [
        by("/shoal/autoscaler/a", 0, decision(1, epoch=1)),
        at(1, start("old")),
        at(1.2, report(ReplicaReady, "old")),
        at(5, start("new")),
        at(5.3, DrainReplica(node="n1", function="f", replica_id="old")),
        at(5.4, report(ReplicaReady, "new")),
        at(6, report(ReplicaStopped, "old")),
    ]
    assert check(rollout, grace_s=0).violations == []
    late = [*rollout[:4], at(5.5, start("third")), at(7, rollout[4].data)]
    assert [v.rule for v in check(late, grace_s=100).violations] == ["within desired and surge"]


def test_the_cli_prints_each_rule_and_exits_1_on_a_violation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    forged = at(5, report(ReplicaReady, "ghost"))
    check_log(clean(), "table")
    with pytest.raises(SystemExit) as stopped:
        check_log([*clean(), forged], "table")
    assert stopped.value.code == 1
    printed = capsys.readouterr().out
    assert "reports follow commands" in printed and f"(events {forged.id})" in printed
