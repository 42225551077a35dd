"""Traffic between revisions in the one model: a canary deployment starts a rollout
against the revision that takes the calls, promotions move its share, the last ends it,
a rollback or a user's split ends it too; tags name revisions; and the replicas are
shared between revisions by their share of the calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.envelope import Envelope, new_envelope
from events.projections.functions import FunctionView
from events.projections.world import World
from events.types import (
    CanaryAnalysed,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    Payload,
    RevisionTagged,
    TrafficSplit,
    TrafficTarget,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STABLE = FunctionSpec(name="f", image="img:1", rollout="canary")
CANARY = FunctionSpec(name="f", image="img:2", rollout="canary", canary_steps=[5, 50])
IMMEDIATE = FunctionSpec(name="f", image="img:3")


class Log:
    def __init__(self) -> None:
        self.world = World()
        self.seconds = 0.0

    def add(self, payload: Payload) -> Envelope:
        self.seconds += 1
        envelope = new_envelope(payload, source="/t", at=T0 + timedelta(seconds=self.seconds))
        self.world.apply(envelope, self.seconds)
        return envelope

    @property
    def view(self) -> FunctionView:
        found = self.world.function("f")
        assert found is not None
        return found


def promote(step: int, percent: int, revision: int = 2) -> CanaryAnalysed:
    return CanaryAnalysed(
        function="f",
        revision=revision,
        stable=1,
        step=step,
        percent=percent,
        decision="promote",
        reason="held",
    )


@pytest.fixture
def log() -> Log:
    log = Log()
    log.add(FunctionDeployed(function="f", revision=1, spec=STABLE))
    log.add(FunctionUpdated(function="f", revision=2, spec=CANARY))
    return log


def test_a_canary_deployment_keeps_the_calls_on_the_stable_revision_until_promoted(
    log: Log,
) -> None:
    view = log.view
    assert view.revision == 2 and view.rollout is not None
    assert (view.rollout.canary, view.rollout.stable, view.rollout.step) == (2, 1, 0)
    assert view.traffic.shares() == {1: 100}
    assert view.traffic.kept() == {1, 2}
    assert view.traffic.replicas(4) == {1: 4, 2: 1}


def test_promotions_move_the_share_and_the_last_ends_the_rollout(log: Log) -> None:
    log.add(promote(1, 5))
    assert log.view.traffic.shares() == {1: 95, 2: 5}
    assert log.view.traffic.replicas(4) == {1: 4, 2: 1}
    log.add(promote(1, 5))  # the same step again changes nothing
    log.add(promote(2, 50))
    assert log.view.traffic.shares() == {1: 50, 2: 50}
    assert log.view.traffic.replicas(4) == {1: 2, 2: 2}
    log.add(promote(3, 100))
    assert log.view.rollout is None
    assert log.view.traffic.shares() == {2: 100} and log.view.traffic.plain()
    assert log.view.traffic.replicas(4) == {}


def test_a_waiting_or_aborting_analysis_moves_nothing_but_is_kept(log: Log) -> None:
    log.add(promote(1, 5))
    abort = CanaryAnalysed(
        function="f",
        revision=2,
        stable=1,
        step=1,
        percent=5,
        decision="abort",
        reason="5xx",
        inputs={"canary_error_ratio": 1.0},
    )
    log.add(abort)
    assert log.view.rollout is not None and log.view.rollout.analysis == abort
    assert log.view.traffic.shares() == {1: 95, 2: 5}
    log.add(
        FunctionRolledBack(function="f", from_revision=2, to_revision=1, reason="canary aborted")
    )
    view = log.view
    assert view.rollout is None and view.revision == 1
    assert view.traffic.shares() == {1: 100} and view.traffic.kept() == {1}
    assert 2 in view.rolled_back


def test_an_analysis_of_another_revision_is_ignored(log: Log) -> None:
    log.add(promote(1, 5, revision=7))
    assert log.view.rollout is not None and log.view.rollout.step == 0


def test_a_users_split_ends_the_canary_and_an_immediate_deployment_ends_the_split(log: Log) -> None:
    log.add(promote(1, 5))
    log.add(
        TrafficSplit(
            function="f",
            targets=[TrafficTarget(revision=1, percent=90), TrafficTarget(revision=2, percent=10)],
        )
    )
    assert log.view.rollout is None
    assert log.view.traffic.shares() == {1: 90, 2: 10}
    assert log.view.traffic.replicas(10) == {1: 9, 2: 1}
    log.add(FunctionUpdated(function="f", revision=3, spec=IMMEDIATE))
    assert log.view.traffic.shares() == {3: 100} and log.view.traffic.plain()


def test_a_split_naming_an_unknown_revision_is_not_applied(log: Log) -> None:
    log.add(TrafficSplit(function="f", targets=[TrafficTarget(revision=9, percent=100)]))
    assert log.view.rollout is not None and log.view.split == {}


def test_tags_name_revisions_and_keep_them_running() -> None:
    log = Log()
    log.add(FunctionDeployed(function="f", revision=1, spec=IMMEDIATE))
    log.add(FunctionUpdated(function="f", revision=2, spec=IMMEDIATE))
    log.add(RevisionTagged(function="f", tag="old", revision=1))
    log.add(RevisionTagged(function="f", tag="nowhere", revision=5))
    assert log.view.tags == {"old": 1}
    assert log.view.traffic.kept() == {1, 2}
    assert log.view.traffic.replicas(3) == {1: 1, 2: 3}
    assert log.view.traffic.replicas(0) == {1: 0, 2: 0}
    log.add(RevisionTagged(function="f", tag="old", revision=0))
    assert log.view.tags == {} and log.view.traffic.plain()


def test_a_split_must_sum_to_100_and_name_each_revision_once() -> None:
    with pytest.raises(ValueError, match="sum to 90"):
        TrafficSplit(function="f", targets=[TrafficTarget(revision=1, percent=90)])
    with pytest.raises(ValueError, match="named twice"):
        TrafficSplit(function="f", targets=[TrafficTarget(revision=1, percent=50)] * 2)


def test_the_summary_tells_the_shares_and_the_canarys_step(log: Log) -> None:
    assert log.view.traffic.summary() == "r1 100%; canary r2 waiting for it to be ready"
    log.add(promote(1, 5))
    assert log.view.traffic.summary() == "r1 95%, r2 5%; canary r2 step 1: promote, held"


def test_a_promotion_read_before_its_revision_is_applied_when_the_revision_comes() -> None:
    log = Log()
    log.add(FunctionDeployed(function="f", revision=1, spec=STABLE))
    log.add(promote(1, 5))  # the scale topic read ahead of the functions topic
    log.add(FunctionUpdated(function="f", revision=2, spec=CANARY))
    assert log.view.traffic.shares() == {1: 95, 2: 5}
