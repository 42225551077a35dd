"""The healer's canary shell over the shared world: the first step once the canary is
ready, a promotion per step from the calls heard since it began, an abort published with
its rollback and evidence, each decision once (applied to the world as it is published),
and a waiting canary said at most every few seconds, only when its numbers changed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events.envelope import Envelope, new_envelope
from events.projections.world import World
from events.types import (
    FINE_LATENCY_BOUNDS_MS,
    CanaryAnalysed,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    Payload,
    ReplicaReady,
    RequestStats,
)
from services.healer.rollouts import Rollouts

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STABLE = FunctionSpec(name="f", image="img:1")
CANARY = FunctionSpec(
    name="f",
    image="img:2",
    rollout="canary",
    canary_steps=[10, 50],
    canary_step_s=5,
    canary_min_requests=10,
)


class Shell:
    def __init__(self) -> None:
        self.world = World()
        self.published: list[Envelope] = []
        self.rollouts = Rollouts(self.world, publish=self.publish, epoch=lambda: 0)

    def apply(self, payload: Payload, now: float, causation_id: str | None = None) -> Envelope:
        at = T0 + timedelta(seconds=now)
        envelope = new_envelope(payload, source="/t", at=at, causation_id=causation_id)
        self.world.apply(envelope, now)
        return envelope

    async def publish(self, payload: Payload, causation_id: str | None) -> Envelope:
        envelope = self.apply(payload, self.now, causation_id)
        self.published.append(envelope)
        return envelope

    async def tick(self, now: float) -> list[Payload]:
        self.now = now
        before = len(self.published)
        view = self.world.functions.functions.get("f")
        assert view is not None
        await self.rollouts.judge(view, now)
        return [e.data for e in self.published[before:]]

    def calls(self, revision: int, now: float, requests: int, errors: int = 0) -> None:
        fine = [0] * (len(FINE_LATENCY_BOUNDS_MS) + 1)
        fine[10] = requests
        stats = RequestStats(
            function="f",
            revision=revision,
            api_instance="api",
            interval_s=1,
            requests=requests,
            errors=errors,
            mean_concurrency=1,
            peak_concurrency=1,
            queue_depth=0,
            latency_fine=fine,
        )
        self.rollouts.heard(stats, now, uuid.uuid4().hex, live=True)


@pytest.fixture
def shell() -> Shell:
    shell = Shell()
    shell.apply(FunctionDeployed(function="f", revision=1, spec=STABLE), 0)
    shell.apply(FunctionUpdated(function="f", revision=2, spec=CANARY), 1)
    return shell


def ready(shell: Shell, now: float) -> None:
    shell.apply(
        ReplicaReady(function="f", revision=2, replica_id="c1", node="n1", endpoint="http://x"), now
    )


async def test_a_healthy_canary_is_promoted_step_by_step_once_per_step(shell: Shell) -> None:
    assert await shell.tick(2) == []  # not ready: no step
    ready(shell, 2.5)
    (first,) = await shell.tick(3)
    assert isinstance(first, CanaryAnalysed) and (first.step, first.percent) == (1, 10)
    (said,) = await shell.tick(3.5)
    assert said.decision == "wait" and "0 of the 10 calls" in said.reason  # type: ignore[attr-defined]
    shell.calls(1, 4, 90)
    shell.calls(2, 4, 10)
    assert await shell.tick(4) == []  # said less than 5 s ago
    (promoted,) = await shell.tick(8.1)
    assert (promoted.decision, promoted.step, promoted.percent) == ("promote", 2, 50)  # type: ignore[attr-defined]
    shell.calls(2, 9, 50)
    shell.calls(1, 9, 50)
    (waiting,) = await shell.tick(9)
    assert waiting.decision == "wait" and "lasts 5 s" in waiting.reason  # type: ignore[attr-defined]
    assert await shell.tick(12) == []  # the numbers have not changed (time alone is no news)
    (done,) = await shell.tick(13.2)
    assert (done.decision, done.percent) == ("promote", 100)  # type: ignore[attr-defined]
    assert shell.world.function("f").rollout is None  # type: ignore[union-attr]
    assert await shell.tick(20) == []


async def test_a_failing_canary_is_aborted_and_rolled_back_with_its_evidence(shell: Shell) -> None:
    ready(shell, 2)
    await shell.tick(3)
    shell.calls(1, 4, 200)
    shell.calls(2, 4, 10, errors=10)
    abort, rolled = await shell.tick(4)
    assert isinstance(abort, CanaryAnalysed) and abort.decision == "abort"
    assert isinstance(rolled, FunctionRolledBack)
    assert (rolled.from_revision, rolled.to_revision) == (2, 1)
    assert rolled.inputs["canary_error_ratio"] == 1.0 and rolled.inputs["canary_requests"] == 10
    assert shell.published[-1].causationid == shell.published[-2].id
    view = shell.world.function("f")
    assert view is not None and view.revision == 1 and view.rollout is None
    assert await shell.tick(5) == []  # decided once
    shell.rollouts.tidy()
    assert shell.rollouts.calls.seconds == {}  # no canary: its calls are let go


async def test_calls_from_before_the_step_are_not_judged(shell: Shell) -> None:
    shell.calls(2, 0.5, 50, errors=50)  # from before the canary's first step
    ready(shell, 2)
    await shell.tick(3)
    shell.calls(2, 4, 10)
    (waiting,) = await shell.tick(4)
    assert waiting.decision == "wait"  # type: ignore[attr-defined]
    assert waiting.inputs["canary_requests"] == 10  # type: ignore[attr-defined]
    assert await shell.tick(7) == []  # too early to promote, the same numbers


async def test_an_abort_whose_rollback_was_lost_is_rolled_back_by_the_next_leader(
    shell: Shell,
) -> None:
    ready(shell, 2)
    await shell.tick(3)
    abort = CanaryAnalysed(
        function="f", revision=2, stable=1, step=1, percent=10, decision="abort", reason="5xx"
    )
    shell.apply(abort, 4)  # the healer that said it died before its rollback
    (rolled,) = await shell.tick(4.5)
    assert isinstance(rolled, FunctionRolledBack) and rolled.from_revision == 2
    assert await shell.tick(5) == []


def report(function: str, revision: int, requests: int, errors: int = 0) -> RequestStats:
    return RequestStats(
        function=function,
        revision=revision,
        api_instance="api",
        interval_s=1,
        requests=requests,
        errors=errors,
        mean_concurrency=1,
        peak_concurrency=1,
        queue_depth=0,
    )


async def test_calls_that_do_not_add_up_or_come_twice_are_not_counted(shell: Shell) -> None:
    ready(shell, 2)
    await shell.tick(3)
    shell.rollouts.heard(report("f", 2, 5, errors=9), 4, "a", live=True)
    shell.calls(2, 4, 10)
    twice = report("f", 2, 7)
    shell.rollouts.heard(twice, 4, "b", live=True)
    shell.rollouts.heard(twice, 4, "b", live=True)
    assert shell.rollouts.calls.tally("f", 2, 3).requests == 17
    shell.rollouts.heard(report("ghost", 1, 7), 4, "c", live=True)
    assert ("ghost", 1) not in shell.rollouts.calls.seconds


async def test_a_deleted_functions_canary_is_judged_no_more(shell: Shell) -> None:
    ready(shell, 2)
    await shell.tick(3)
    shell.apply(FunctionDeleted(function="f"), 3.5)
    assert await shell.tick(4) == [] and await shell.tick(10) == []
