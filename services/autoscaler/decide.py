"""The scaling decision (pure): Knative's KPA for concurrency and rps, Kubernetes' HPA rule
for CPU; `now` and every input are passed in, nothing is read from a clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from events.types import FunctionSpec

CPU_TOLERANCE = 0.10


@dataclass(frozen=True)
class Observed:
    """What the windows say, for one function at one tick."""

    stable: float
    """Concurrency (or requests per second) averaged over the stable window."""
    panic: float
    """The same over the panic window."""
    cpu_fraction: float | None
    """Mean CPU use of the ready replicas as a fraction of their limit; None if unknown."""
    last_request_at: float | None
    queued: int = 0
    """Requests the api holds for want of a replica (cold-start demand)."""


@dataclass
class ScalerMemory:
    """What the decider remembers between ticks of one function."""

    desired: int
    panic_since: float | None = None
    last_panic_at: float | None = None
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    created_at: float = 0.0


@dataclass(frozen=True)
class Decision:
    desired: int
    panic: bool
    reason: str
    inputs: dict[str, float]


def _bounded(spec: FunctionSpec, count: int) -> int:
    count = max(count, spec.min_replicas)
    return min(count, spec.max_replicas) if spec.max_replicas else count


def decide(
    spec: FunctionSpec, observed: Observed, memory: ScalerMemory, *, ready: int, now: float
) -> Decision:
    """The desired replica count for one function now, updating `memory`."""
    per_replica = spec.target * spec.target_utilization
    metric = spec.scaling_metric
    inputs: dict[str, float] = {
        "ready": ready,
        "current_desired": memory.desired,
        "target_per_replica": per_replica,
        "queued": observed.queued,
    }
    reasons: list[str] = []
    if metric == "cpu":
        want_stable = want_panic = 0
    else:
        want_stable = math.ceil(observed.stable / per_replica)
        want_panic = math.ceil(observed.panic / per_replica)
        inputs |= {
            f"stable_{metric}": round(observed.stable, 3),
            f"panic_{metric}": round(observed.panic, 3),
        }
    cpu_target = spec.cpu_target_pct if metric != "cpu" else (spec.cpu_target_pct or spec.target)
    if cpu_target is not None and observed.cpu_fraction is not None and ready > 0:
        usage_ratio = observed.cpu_fraction * 100 / cpu_target
        inputs |= {"cpu_pct": round(observed.cpu_fraction * 100, 1), "cpu_target_pct": cpu_target}
        # HPA: inside the tolerance band nothing changes, so small noise does not flap.
        want_cpu = (
            ready if abs(usage_ratio - 1) <= CPU_TOLERANCE else math.ceil(ready * usage_ratio)
        )
        if want_cpu > want_stable:
            reasons.append(
                f"cpu {observed.cpu_fraction * 100:.0f}% of limit over target "
                f"{cpu_target:g}% on {ready} ready"
            )
        want_stable = max(want_stable, want_cpu)
        want_panic = max(want_panic, want_cpu)

    # Knative: panic when the short window asks for at least panic_threshold x what is ready.
    capacity = max(ready, 1)
    panicking_now = (
        want_panic > 0
        and want_panic >= capacity * spec.panic_threshold_pct / 100
        and want_panic > ready
    )
    if panicking_now:
        memory.last_panic_at = now
        if memory.panic_since is None:
            memory.panic_since = now
    elif (
        memory.panic_since is not None
        and memory.last_panic_at is not None
        and now - memory.last_panic_at >= spec.stable_window_s
    ):
        memory.panic_since = None
    panic = memory.panic_since is not None

    if panic:
        wanted = max(want_panic, memory.desired)
        reasons.insert(
            0,
            f"panic: {metric} {observed.panic:.1f} over the "
            f"{spec.stable_window_s * spec.panic_window_pct / 100:g} s window, "
            f"target {per_replica:g} per replica",
        )
    else:
        wanted = want_stable
        if metric != "cpu":
            reasons.insert(
                0,
                f"{metric} {observed.stable:.1f} over the {spec.stable_window_s:g} s "
                f"window, target {per_replica:g} per replica",
            )

    # Demand from the api for a function with nothing ready scales to one at once.
    if observed.queued and wanted == 0:
        wanted = 1
        reasons.insert(0, f"cold start: {observed.queued} request(s) waiting")

    # Rates: at most max_scale_up_rate x and at least 1/max_scale_down_rate of what is ready.
    if ready > 0:
        wanted = min(wanted, math.ceil(ready * spec.max_scale_up_rate))
        floor_down = math.floor(ready / spec.max_scale_down_rate)
        if wanted < floor_down:
            wanted = floor_down
            reasons.append(f"scale-down rate limited to /{spec.max_scale_down_rate:g}")

    # Stabilisation: scale down only to the highest recommendation of the delay window.
    memory.recommendations = [
        (t, r) for t, r in memory.recommendations if now - t < spec.scale_down_delay_s
    ] + [(now, wanted)]
    if spec.scale_down_delay_s > 0:
        wanted = max(r for _, r in memory.recommendations)

    # Zero only after the grace period without requests (and not while panicking).
    if wanted == 0 and memory.desired > 0:
        quiet_since = (
            observed.last_request_at if observed.last_request_at is not None else memory.created_at
        )
        if now - quiet_since < spec.scale_to_zero_grace_s or panic:
            wanted = 1
            reasons.append(f"holding 1 until {spec.scale_to_zero_grace_s:g} s without requests")
        else:
            reasons.append(f"no requests for {now - quiet_since:.0f} s: scale to zero")

    if panic:
        wanted = max(wanted, memory.desired)
    bounded = _bounded(spec, wanted)
    if bounded != wanted:
        reasons.append(f"bounded to [{spec.min_replicas}, {spec.max_replicas or 'inf'}]")
    memory.desired = bounded
    inputs["desired"] = bounded
    return Decision(
        desired=bounded, panic=panic, reason="; ".join(reasons) or "steady", inputs=inputs
    )


def initial_desired(spec: FunctionSpec) -> int:
    """The count of a newly deployed function (Knative's initial scale, within bounds)."""
    return _bounded(spec, spec.initial_scale)
