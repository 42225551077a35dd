"""The canary analysis (pure): at each step, promote, wait or abort, from the calls the
canary and the current (stable) revision answered since the step began. Time is passed in.

The canary is judged on errors and latency as soon as it has answered enough calls (an
abort does not wait for the step's end); it is promoted once the step has lasted its time
with enough calls and nothing wrong. Too few calls: no judgement, it waits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from events.spec import FunctionSpec
from events.types import FINE_LATENCY_BOUNDS_MS


@dataclass
class Tally:
    """One revision's calls over a window: counts and fine latency buckets (`RequestStats`)."""

    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(FINE_LATENCY_BOUNDS_MS) + 1))

    def add(self, requests: int, errors: int, buckets: list[int]) -> None:
        self.requests += requests
        self.errors += errors
        for index, count in enumerate(buckets[: len(self.buckets)]):
            self.buckets[index] += count

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile_ms(self, q: float) -> float:
        """The q-quantile of latency, interpolated within its bucket (0 with no calls)."""
        total = sum(self.buckets)
        if not total:
            return 0.0
        rank, seen = q * total, 0
        for index, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                if index >= len(FINE_LATENCY_BOUNDS_MS):
                    return float(FINE_LATENCY_BOUNDS_MS[-1])
                low = FINE_LATENCY_BOUNDS_MS[index - 1] if index else 0.0
                return low + (FINE_LATENCY_BOUNDS_MS[index] - low) * (rank - seen) / count
            seen += count
        return float(FINE_LATENCY_BOUNDS_MS[-1])


@dataclass(frozen=True)
class Policy:
    steps: tuple[int, ...]
    step_s: float
    min_requests: int
    max_error_increase: float
    max_latency_ratio: float
    latency_slack_ms: float
    """A canary is not slow for latency within this of the stable's p95, whatever the
    ratio: 1 ms against 3 ms is noise, and so was a healthy canary's 27 ms against 12 ms
    on a busy machine (fresh replicas, coarse buckets)."""

    @classmethod
    def of(cls, spec: FunctionSpec) -> Policy:
        return cls(
            steps=tuple(spec.canary_steps),
            step_s=spec.canary_step_s,
            min_requests=spec.canary_min_requests,
            max_error_increase=spec.canary_max_error_increase,
            max_latency_ratio=spec.canary_max_latency_ratio,
            latency_slack_ms=spec.canary_latency_slack_ms,
        )

    def share_after(self, step: int) -> int:
        """The canary's share at step `step` + 1 (100 past the last step)."""
        return self.steps[step] if step < len(self.steps) else 100


@dataclass(frozen=True)
class Verdict:
    decision: Literal["promote", "wait", "abort"]
    step: int
    percent: int
    reason: str
    inputs: dict[str, float] = field(default_factory=dict)


def first_step(policy: Policy, *, canary_ready: bool) -> Verdict | None:
    """The canary's first step, once it has a ready replica (None: not yet)."""
    if not canary_ready:
        return None
    percent = policy.share_after(0)
    return Verdict("promote", 1, percent, f"the canary is ready: step 1 sends it {percent}%")


def analyse(
    policy: Policy,
    *,
    step: int,
    percent: int,
    canary: Tally,
    stable: Tally,
    started_at: float,
    now: float,
) -> Verdict:
    """The judgement of step `step` (the canary at `percent`), begun at `started_at`."""
    elapsed = now - started_at
    inputs = _inputs(canary, stable) | {"elapsed_s": round(elapsed, 3), "step_s": policy.step_s}

    def verdict(decision: Literal["promote", "wait", "abort"], reason: str) -> Verdict:
        if decision == "promote":
            return Verdict(decision, step + 1, policy.share_after(step), reason, inputs)
        return Verdict(decision, step, percent, reason, inputs)

    if canary.requests < policy.min_requests:
        return verdict(
            "wait", f"{canary.requests} of the {policy.min_requests} calls a judgement needs"
        )
    wrong = _errors(policy, canary, stable) or _latency(policy, canary, stable)
    if wrong:
        return verdict("abort", wrong)
    if elapsed < policy.step_s:
        return verdict("wait", f"healthy so far; step {step} lasts {policy.step_s:g} s")
    target = policy.share_after(step)
    return verdict("promote", f"step {step} held for {elapsed:.0f} s: the canary goes to {target}%")


def _errors(policy: Policy, canary: Tally, stable: Tally) -> str:
    if canary.error_ratio - stable.error_ratio <= policy.max_error_increase:
        return ""
    return (
        f"5xx ratio {canary.error_ratio:.1%} against the current revision's "
        f"{stable.error_ratio:.1%} (at most {policy.max_error_increase:.0%} more allowed)"
    )


def _latency(policy: Policy, canary: Tally, stable: Tally) -> str:
    if stable.requests < policy.min_requests:
        return ""
    mine, theirs = canary.quantile_ms(0.95), stable.quantile_ms(0.95)
    if mine <= theirs * policy.max_latency_ratio or mine - theirs <= policy.latency_slack_ms:
        return ""
    return (
        f"p95 latency {mine:.0f} ms against the current revision's {theirs:.0f} ms "
        f"(at most {policy.max_latency_ratio:g} times allowed)"
    )


def _inputs(canary: Tally, stable: Tally) -> dict[str, float]:
    numbers: dict[str, float] = {}
    for who, tally in (("canary", canary), ("stable", stable)):
        numbers[f"{who}_requests"] = tally.requests
        numbers[f"{who}_errors"] = tally.errors
        numbers[f"{who}_error_ratio"] = round(tally.error_ratio, 4)
        numbers[f"{who}_p95_ms"] = round(tally.quantile_ms(0.95), 1)
    return numbers
