"""A restarted healer, which reads the history back, judges as the live one did."""

from __future__ import annotations

from datetime import timedelta

from events.envelope import Envelope, new_envelope
from events.types import (
    FunctionDeployed,
    FunctionSpec,
    FunctionUpdated,
    Payload,
    ReplicaFailed,
    ReplicaReady,
)
from services.healer.policy import Rollback, rollback_for
from services.healer.service import Healer
from services.healer.settings import Settings
from tests.support.clock import START, FakeClock

SETTINGS = Settings.from_env({})
REPLICA = {"function": "f", "node": "n0"}


def spec(image: str) -> FunctionSpec:
    return FunctionSpec(name="f", image=image)


def written(seconds: float, payload: Payload) -> Envelope:
    return new_envelope(payload, source="/t", at=START + timedelta(seconds=seconds))


def ready(revision: int, rid: str) -> ReplicaReady:
    return ReplicaReady(revision=revision, replica_id=rid, endpoint=f"http://x/{rid}", **REPLICA)


def oom(rid: str) -> ReplicaFailed:
    return ReplicaFailed(revision=2, replica_id=rid, reason="OOM", **REPLICA)


HISTORY = [
    (0, FunctionDeployed(function="f", revision=1, spec=spec("img:1"))),
    (5, ready(1, "r1")),
    (100, FunctionUpdated(function="f", revision=2, spec=spec("img:2"))),
    (105, ready(2, "r2")),
    # three OOM kills over two days, each replaced and ready again
    (50_000, oom("r2")),
    (50_005, ready(2, "r3")),
    (100_000, oom("r3")),
    (100_005, ready(2, "r4")),
    (150_000, oom("r4")),
    (150_005, ready(2, "r5")),
]


def judged(healer: Healer) -> Rollback | None:
    view = healer.world.function("f")
    assert view is not None
    return rollback_for(
        view,
        healer.world.failures,
        healer.clock.now(),
        progress_deadline_s=SETTINGS.progress_deadline_s,
        failure_threshold=SETTINGS.rollback_failures,
    )


def test_a_restarted_healer_does_not_roll_back_a_revision_that_has_long_been_stable() -> None:
    clock = FakeClock()
    live = Healer(SETTINGS, clock=clock)
    live.hearing.go_live()
    for seconds, payload in HISTORY:
        clock.monotonic = 1000.0 + seconds
        live.apply(written(seconds, payload))
    assert judged(live) is None
    restarted = Healer(SETTINGS, clock=FakeClock(monotonic=5.0))
    for seconds, payload in HISTORY:
        restarted.apply(written(seconds, payload))
    restarted.world.shift(restarted.hearing.go_live())
    assert judged(restarted) is None


def test_a_restarted_healer_still_rolls_back_what_failed_while_it_was_away() -> None:
    crashing = [
        (0, FunctionDeployed(function="f", revision=1, spec=spec("img:1"))),
        (5, ready(1, "r1")),
        (100, FunctionUpdated(function="f", revision=2, spec=spec("img:2"))),
        *[(101 + n, oom(f"c{n}")) for n in range(3)],
    ]
    restarted = Healer(SETTINGS, clock=FakeClock(monotonic=5.0))
    for seconds, payload in crashing:
        restarted.apply(written(seconds, payload))
    restarted.world.shift(restarted.hearing.go_live())
    decision = judged(restarted)
    assert decision is not None and decision.to_revision == 1
    assert "within 3.0 s of its rollout" in decision.reason
