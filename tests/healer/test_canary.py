"""The canary analyser as a table: promote, wait for calls or for the step's time, abort
on errors or on latency, and no judgement on too few calls. The clock is an argument."""

from __future__ import annotations

import pytest

from events.spec import FunctionSpec
from events.types import FINE_LATENCY_BOUNDS_MS
from services.healer.canary import Policy, Tally, analyse, first_step

POLICY = Policy.of(
    FunctionSpec(
        name="f",
        image="shoal-test/hello:1",
        rollout="canary",
        canary_steps=[5, 25, 50],
        canary_step_s=30,
        canary_min_requests=20,
    )
)


def tally(requests: int, errors: int = 0, latency_ms: float = 4.0) -> Tally:
    """`requests` calls, all of them in the latency bucket of `latency_ms`."""
    found = Tally()
    buckets = [0] * (len(FINE_LATENCY_BOUNDS_MS) + 1)
    index = next((i for i, b in enumerate(FINE_LATENCY_BOUNDS_MS) if latency_ms <= b), -1)
    buckets[index] = requests
    found.add(requests, errors, buckets)
    return found


CASES = [
    # (what, step, canary, stable, seconds into the step, decision, step after, percent after)
    ("healthy, the step's time held: promote", 1, tally(40), tally(800), 31, "promote", 2, 25),
    ("the last step held: to 100%", 3, tally(400), tally(400), 31, "promote", 4, 100),
    ("healthy, the step not over: wait", 1, tally(40), tally(800), 10, "wait", 1, 5),
    ("too few calls, though all failed: wait", 1, tally(19, 19), tally(400), 100, "wait", 1, 5),
    ("no calls at all: wait", 2, tally(0), tally(0), 100, "wait", 2, 25),
    ("every call a 5xx: abort at once", 1, tally(20, 20), tally(400), 2, "abort", 1, 5),
    (
        "5xx 10 points above the stable's: abort",
        1,
        tally(100, 12),
        tally(900, 18),
        40,
        "abort",
        1,
        5,
    ),
    (
        "5xx as often as the stable's: promote",
        1,
        tally(100, 10),
        tally(900, 90),
        40,
        "promote",
        2,
        25,
    ),
    (
        "p95 3x the stable's: abort",
        2,
        tally(60, latency_ms=150),
        tally(300, latency_ms=60),
        5,
        "abort",
        2,
        25,
    ),
    (
        "p95 3x the stable's but within 50 ms of it: promote",
        1,
        tally(60, latency_ms=40),
        tally(300, latency_ms=12),
        31,
        "promote",
        2,
        25,
    ),
    (
        "p95 1.5x, under the 2x allowed: promote",
        1,
        tally(60, latency_ms=40),
        tally(300, latency_ms=25),
        31,
        "promote",
        2,
        25,
    ),
    (
        "too few stable calls to compare latency: promote",
        1,
        tally(60, latency_ms=900),
        tally(5, latency_ms=4),
        31,
        "promote",
        2,
        25,
    ),
]


@pytest.mark.parametrize(
    ("what", "step", "canary", "stable", "elapsed", "decision", "step_after", "percent_after"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_the_analyser_decides_from_the_calls_and_the_clock(
    what: str,
    step: int,
    canary: Tally,
    stable: Tally,
    elapsed: float,
    decision: str,
    step_after: int,
    percent_after: int,
) -> None:
    percent = POLICY.share_after(step - 1)
    verdict = analyse(
        POLICY,
        step=step,
        percent=percent,
        canary=canary,
        stable=stable,
        started_at=1000.0,
        now=1000.0 + elapsed,
    )
    assert (verdict.decision, verdict.step, verdict.percent) == (
        decision,
        step_after,
        percent_after,
    ), verdict.reason
    assert verdict.inputs["canary_requests"] == canary.requests
    assert verdict.inputs["stable_requests"] == stable.requests
    assert verdict.inputs["elapsed_s"] == elapsed


def test_abort_reasons_name_the_numbers() -> None:
    errors = analyse(
        POLICY, step=1, percent=5, canary=tally(20, 20), stable=tally(400), started_at=0, now=1
    )
    assert "5xx ratio 100.0%" in errors.reason and "0.0%" in errors.reason
    slow = analyse(
        POLICY,
        step=1,
        percent=5,
        canary=tally(60, latency_ms=150),
        stable=tally(300, latency_ms=60),
        started_at=0,
        now=1,
    )
    assert "p95 latency" in slow.reason and "2 times" in slow.reason
    assert slow.inputs["canary_p95_ms"] > 2 * slow.inputs["stable_p95_ms"]


def test_a_fast_function_is_judged_on_latency_with_a_slack_of_its_own() -> None:
    """3x slower but 28 ms more: within the default slack of 50 ms, beyond one of 5 ms."""
    canary, stable = tally(60, latency_ms=40), tally(300, latency_ms=12)
    spec = FunctionSpec(name="f", image="i:1", rollout="canary", canary_latency_slack_ms=5)
    for policy, decision in ((POLICY, "promote"), (Policy.of(spec), "abort")):
        verdict = analyse(
            policy, step=1, percent=5, canary=canary, stable=stable, started_at=0, now=31
        )
        assert verdict.decision == decision, verdict.reason


def test_the_first_step_waits_for_a_ready_canary() -> None:
    assert first_step(POLICY, canary_ready=False) is None
    started = first_step(POLICY, canary_ready=True)
    assert started is not None
    assert (started.decision, started.step, started.percent) == ("promote", 1, 5)


def test_quantiles_interpolate_within_their_bucket() -> None:
    found = Tally()
    buckets = [0] * (len(FINE_LATENCY_BOUNDS_MS) + 1)
    index = 20  # all in (1.25**19, 1.25**20] ms
    buckets[index] = 100
    found.add(100, 0, buckets)
    low, high = FINE_LATENCY_BOUNDS_MS[index - 1], FINE_LATENCY_BOUNDS_MS[index]
    assert found.quantile_ms(0.5) == pytest.approx(low + (high - low) / 2)
    assert found.quantile_ms(0.95) == pytest.approx(low + (high - low) * 0.95)
    assert Tally().quantile_ms(0.95) == 0
    beyond = Tally()
    beyond.add(1, 0, [0] * len(FINE_LATENCY_BOUNDS_MS) + [1])
    assert beyond.quantile_ms(0.95) == FINE_LATENCY_BOUNDS_MS[-1]
