"""The autoscaler's shell: what it reads back from the history and how it places it."""

from __future__ import annotations

from datetime import timedelta

from events.envelope import new_envelope
from events.types import FunctionDeployed, FunctionSpec, RequestStats, ScaleDecision
from services.autoscaler.service import Autoscaler
from services.autoscaler.settings import Settings
from tests.support.clock import START, FakeClock

SPEC = FunctionSpec(name="f", image="i", target=10, target_utilization=1.0)


def stats(seconds: float, source: str, concurrency: float) -> object:
    payload = RequestStats(
        function="f",
        api_instance=source,
        interval_s=1.0,
        requests=10,
        errors=0,
        mean_concurrency=concurrency,
        peak_concurrency=int(concurrency),
        queue_depth=0,
    )
    return new_envelope(
        payload, source=f"/shoal/api/{source}", at=START + timedelta(seconds=seconds)
    )


def test_the_history_of_an_api_instance_that_died_does_not_count_as_current_load() -> None:
    clock = FakeClock()
    scaler = Autoscaler(Settings.from_env({}), clock=clock)
    deployed = FunctionDeployed(function="f", revision=1, spec=SPEC)
    scaler.apply(new_envelope(deployed, source="/t", at=START))
    decision = ScaleDecision(
        function="f", revision=1, previous=0, desired=1, panic=False, reason="initial"
    )
    scaler.apply(new_envelope(decision, source="/t", at=START))
    for second in range(0, 100):
        if second < 20:
            scaler.apply(stats(second, "api-dead", 10.0))  # type: ignore[arg-type]
        scaler.apply(stats(second, "api-live", 10.0))  # type: ignore[arg-type]
    offset = scaler.hearing.go_live()
    scaler.world.shift(offset)
    scaler._place_backlog(offset)
    view = scaler.world.function("f")
    assert view is not None
    metrics = scaler._metrics("f")
    assert metrics is not None
    observed = scaler._observed(view, metrics, clock.now() + 1)
    assert 9.0 <= observed.stable <= 10.5, observed
