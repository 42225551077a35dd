"""The scaling decider, rule by rule, with the clock driven by hand."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.types import FunctionSpec
from services.autoscaler.decide import Decision, Observed, ScalerMemory, decide, initial_desired
from services.autoscaler.windows import MetricWindow

SPEC = FunctionSpec(name="f", image="i", target=10, target_utilization=1.0, max_replicas=0)


def spec(**changes: object) -> FunctionSpec:
    return msgspec.structs.replace(SPEC, **changes)


def load(
    stable: float,
    panic: float | None = None,
    *,
    cpu: float | None = None,
    last_request_at: float | None = 0.0,
    queued: int = 0,
) -> Observed:
    return Observed(
        stable=stable,
        panic=stable if panic is None else panic,
        cpu_fraction=cpu,
        last_request_at=last_request_at,
        queued=queued,
    )


def once(
    s: FunctionSpec,
    observed: Observed,
    *,
    desired: int,
    ready: int,
    now: float = 100.0,
    memory: ScalerMemory | None = None,
) -> Decision:
    return decide(s, observed, memory or ScalerMemory(desired=desired), ready=ready, now=now)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, 1),
        ({"initial_scale": 0}, 0),
        ({"min_replicas": 3}, 3),
        ({"initial_scale": 5, "max_replicas": 5, "min_replicas": 2}, 5),
    ],
)
def test_a_new_function_starts_at_its_initial_scale_within_bounds(
    changes: dict[str, object], expected: int
) -> None:
    assert initial_desired(spec(**changes)) == expected


@pytest.mark.parametrize(
    ("stable", "ready", "expected"),
    [(10, 1, 1), (11, 1, 2), (35, 4, 4), (40, 4, 4), (0.5, 1, 1), (95, 10, 10)],
)
def test_desired_is_observed_over_target_times_utilization_rounded_up(
    stable: float, ready: int, expected: int
) -> None:
    assert once(SPEC, load(stable), desired=ready, ready=ready).desired == expected


def test_utilization_lowers_the_per_replica_target() -> None:
    decision = once(spec(target_utilization=0.7), load(14), desired=2, ready=2)
    assert decision.desired == 2
    assert decision.inputs["target_per_replica"] == pytest.approx(7.0)


def test_the_rps_metric_scales_on_requests_per_second_with_the_same_rule() -> None:
    decision = once(spec(scaling_metric="rps", target=50), load(260), desired=5, ready=5)
    assert decision.desired == 6
    assert "rps 260.0" in decision.reason


def test_panic_starts_at_twice_the_ready_capacity_and_scales_on_the_panic_window() -> None:
    decision = once(SPEC, load(stable=12, panic=40), desired=1, ready=1)
    assert decision.panic
    assert decision.desired == 4
    assert decision.reason.startswith("panic")


def test_below_twice_capacity_there_is_no_panic() -> None:
    decision = once(SPEC, load(stable=30, panic=70), desired=4, ready=4)
    assert not decision.panic
    assert decision.desired == 3, "the stable window decides: 30 / 10 per replica"


def test_panic_never_scales_down_and_ends_a_stable_window_after_its_cause() -> None:
    memory = ScalerMemory(desired=1)
    assert once(SPEC, load(5, 80), desired=1, ready=1, now=0, memory=memory).desired == 8
    calm = load(stable=5, panic=5)
    for now in (10.0, 30.0, 59.0):
        decision = once(SPEC, calm, desired=8, ready=8, now=now, memory=memory)
        assert (decision.panic, decision.desired) == (True, 8)
    after = once(SPEC, calm, desired=8, ready=8, now=61, memory=memory)
    assert not after.panic
    assert after.desired == 4, "leaving panic, scale-down is still limited to /2 per tick"


def test_scale_down_is_limited_by_the_max_scale_down_rate() -> None:
    assert once(SPEC, load(1), desired=10, ready=10).desired == 5
    assert once(spec(max_scale_down_rate=10), load(1), desired=10, ready=10).desired == 1


def test_scale_up_is_limited_by_the_max_scale_up_rate() -> None:
    assert once(spec(max_scale_up_rate=2), load(100, 100), desired=1, ready=1).desired == 2


def test_scale_down_waits_for_the_highest_recommendation_of_the_delay_window() -> None:
    s = spec(scale_down_delay_s=30, max_scale_down_rate=100)
    memory = ScalerMemory(desired=6)
    assert once(s, load(60), desired=6, ready=6, now=0, memory=memory).desired == 6
    assert once(s, load(20), desired=6, ready=6, now=10, memory=memory).desired == 6
    assert once(s, load(20), desired=6, ready=6, now=31, memory=memory).desired == 2


def test_scale_to_zero_waits_for_the_grace_period_without_requests() -> None:
    s = spec(scale_to_zero_grace_s=30)
    held = once(s, load(0, last_request_at=80.0), desired=1, ready=1, now=100)
    assert held.desired == 1
    assert "holding 1" in held.reason
    gone = once(s, load(0, last_request_at=60.0), desired=1, ready=1, now=100)
    assert gone.desired == 0
    assert "scale to zero" in gone.reason


def test_min_replicas_keeps_a_floor_and_max_replicas_a_ceiling() -> None:
    assert (
        once(
            spec(min_replicas=2), load(0, last_request_at=None), desired=2, ready=2, now=1000
        ).desired
        == 2
    )
    assert once(spec(max_replicas=3), load(500, 500), desired=1, ready=1).desired == 3


def test_demand_at_zero_scales_to_one_at_once() -> None:
    decision = once(SPEC, load(0, queued=2), desired=0, ready=0)
    assert decision.desired == 1
    assert decision.reason.startswith("cold start: 2 request(s) waiting")


def test_cpu_scales_by_hpa_rule_with_a_tolerance_band() -> None:
    s = spec(scaling_metric="cpu", target=50)
    assert once(s, load(0, cpu=0.9), desired=2, ready=2).desired == 4
    assert once(s, load(0, cpu=0.53), desired=2, ready=2).desired == 2, "within 10%"
    assert once(s, load(0, cpu=0.2), desired=4, ready=4).desired == 2


def test_with_request_and_cpu_metrics_the_larger_desire_wins() -> None:
    s = spec(cpu_target_pct=50)
    by_cpu = once(s, load(10, cpu=1.0), desired=2, ready=2)
    assert by_cpu.desired == 4
    assert "cpu 100% of limit" in by_cpu.reason
    assert once(s, load(50, cpu=0.5), desired=2, ready=2).desired == 5


loads = st.floats(min_value=0, max_value=2000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(loads, loads, st.integers(0, 50), st.integers(0, 5), st.integers(0, 60))
def test_never_outside_bounds(stable: float, panic: float, ready: int, low: int, span: int) -> None:
    s = spec(min_replicas=low, max_replicas=low + span if span else 0)
    decision = once(s, load(stable, panic), desired=ready, ready=ready)
    assert decision.desired >= low
    if span:
        assert decision.desired <= low + span


@settings(max_examples=300, deadline=None)
@given(loads, loads, st.integers(1, 50))
def test_never_down_while_panicking(stable: float, panic: float, ready: int) -> None:
    memory = ScalerMemory(desired=ready, panic_since=0.0, last_panic_at=90.0)
    decision = once(SPEC, load(stable, panic), desired=ready, ready=ready, memory=memory)
    assert decision.panic
    assert decision.desired >= ready


@settings(max_examples=300, deadline=None)
@given(loads, loads, st.integers(1, 50))
def test_more_load_never_asks_for_fewer_replicas(a: float, b: float, ready: int) -> None:
    low, high = sorted((a, b))
    assert (
        once(SPEC, load(low), desired=ready, ready=ready).desired
        <= once(SPEC, load(high), desired=ready, ready=ready).desired
    )


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1, max_value=500), st.integers(1, 20))
def test_constant_load_settles_and_does_not_flap(level: float, start: int) -> None:
    memory = ScalerMemory(desired=start)
    counts = []
    for tick in range(60):
        ready = memory.desired
        counts.append(
            once(
                SPEC, load(level), desired=ready, ready=ready, now=2.0 * tick, memory=memory
            ).desired
        )
    settled = counts[30:]
    assert len(set(settled)) == 1, counts


def test_windows_average_complete_seconds_with_empty_ones_as_zero() -> None:
    window = MetricWindow(horizon_s=60)
    for second in range(10):
        window.add(100 + second, 4.0)
    assert window.average(now=110.2, window_s=10) == pytest.approx(4.0)
    assert window.average(now=110.2, window_s=20) == pytest.approx(2.0)
    window.add(110.1, 50.0)
    assert window.average(now=110.2, window_s=10) == pytest.approx(4.0), "110 is not complete"
    window.add(105.5, 10.0)
    assert window.average(now=110.2, window_s=1) == pytest.approx(4.0)
    assert window.average(now=110.2, window_s=10) == pytest.approx(5.0)
    assert window.average(now=111.0, window_s=1) == pytest.approx(50.0)
    assert window.last_nonzero_at() == 111.0
    window.add(200, 1.0)
    assert window.average(now=201, window_s=60) == pytest.approx(1 / 60)
