"""The scaling decision (pure): a new function's initial scale, a user's pinned count, and
otherwise Knative's KPA for concurrency and rps and Kubernetes' HPA rule for CPU; `now` and
every input are passed in, nothing is read from a clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from events.spec import MAX_REPLICAS_LIMIT
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
    cause: Literal["spec", "metrics"] = "metrics"
    """What the decision follows: the spec (a deployment, a manual scale) or the metrics."""


def most_replicas(spec: FunctionSpec, cap: int = MAX_REPLICAS_LIMIT) -> int:
    """A function's ceiling: its max_replicas (0: none of its own), never above the
    platform's cap, so that no function can fill the cluster."""
    return min(spec.max_replicas, cap) if spec.max_replicas else cap


def _bounded(spec: FunctionSpec, count: int, cap: int = MAX_REPLICAS_LIMIT) -> int:
    return min(max(count, spec.min_replicas), most_replicas(spec, cap))


def initial_desired(spec: FunctionSpec, cap: int = MAX_REPLICAS_LIMIT) -> int:
    """The count of a newly deployed function (Knative's initial scale, within bounds)."""
    return _bounded(spec, spec.initial_scale, cap)


def decide_function(
    spec: FunctionSpec,
    observed: Observed,
    memory: ScalerMemory,
    *,
    desired: int | None,
    pinned: int | None,
    ready: int,
    now: float,
    cap: int = MAX_REPLICAS_LIMIT,
) -> Decision:
    """The desired count of one function now. `desired` is the count in force (None: no
    decision yet, so this is a new function); `pinned` a user's manual count; `cap` the
    platform's ceiling for any function."""
    if desired is None:
        memory.desired, memory.created_at = initial_desired(spec, cap), now
        return Decision(
            desired=memory.desired,
            panic=False,
            reason="initial scale of a new function",
            inputs={"initial_scale": float(spec.initial_scale)},
            cause="spec",
        )
    if pinned is not None:
        memory.desired = min(pinned, cap)
        return Decision(
            desired=memory.desired,
            panic=False,
            reason="manual scale requested through the api"
            + (f"; bounded to the platform's cap of {cap}" if pinned > cap else ""),
            inputs={"manual_replicas": float(pinned)},
            cause="spec",
        )
    return decide(spec, observed, memory, ready=ready, now=now, cap=cap)


def decide(
    spec: FunctionSpec,
    observed: Observed,
    memory: ScalerMemory,
    *,
    ready: int,
    now: float,
    cap: int = MAX_REPLICAS_LIMIT,
) -> Decision:
    """The desired replica count from the metrics, updating `memory`."""
    per_replica = spec.target * spec.target_utilization
    inputs: dict[str, float] = {
        "ready": ready,
        "current_desired": memory.desired,
        "target_per_replica": per_replica,
        "queued": observed.queued,
    }
    reasons: list[str] = []
    want_stable, want_panic = _wanted(spec, observed, per_replica, inputs)
    want_cpu = _cpu_wanted(spec, observed, ready, inputs)
    if want_cpu is not None:
        if want_cpu > want_stable:
            reasons.append(
                f"cpu {(observed.cpu_fraction or 0) * 100:.0f}% of limit over target "
                f"{inputs['cpu_target_pct']:g}% on {ready} ready"
            )
        want_stable, want_panic = max(want_stable, want_cpu), max(want_panic, want_cpu)
    panic = _panic(spec, memory, want_panic, ready, now)
    wanted = max(want_panic, memory.desired) if panic else want_stable
    reasons.insert(0, _metric_reason(spec, observed, per_replica, panic=panic))
    wanted = _after_limits(
        spec, observed, memory, wanted, ready=ready, now=now, panic=panic, reasons=reasons
    )
    bounded = _bounded(spec, wanted, cap)
    if bounded != wanted:
        reasons.append(f"bounded to [{spec.min_replicas}, {most_replicas(spec, cap)}]")
    memory.desired = bounded
    inputs["desired"] = bounded
    return Decision(
        desired=bounded,
        panic=panic,
        reason="; ".join(r for r in reasons if r) or "steady",
        inputs=inputs,
    )


def _wanted(
    spec: FunctionSpec, observed: Observed, per_replica: float, inputs: dict[str, float]
) -> tuple[int, int]:
    """Replicas for the stable and the panic window, from requests (0 when scaling on CPU)."""
    metric = spec.scaling_metric
    if metric == "cpu":
        return 0, 0
    inputs[f"stable_{metric}"] = round(observed.stable, 3)
    inputs[f"panic_{metric}"] = round(observed.panic, 3)
    return math.ceil(observed.stable / per_replica), math.ceil(observed.panic / per_replica)


def _cpu_wanted(
    spec: FunctionSpec, observed: Observed, ready: int, inputs: dict[str, float]
) -> int | None:
    """Replicas by Kubernetes' HPA rule on CPU, when a CPU target and a sample exist."""
    cpu_target = (
        spec.cpu_target_pct
        if spec.scaling_metric != "cpu"
        else (spec.cpu_target_pct or spec.target)
    )
    if cpu_target is None or observed.cpu_fraction is None or ready <= 0:
        return None
    usage_ratio = observed.cpu_fraction * 100 / cpu_target
    inputs["cpu_pct"] = round(observed.cpu_fraction * 100, 1)
    inputs["cpu_target_pct"] = cpu_target
    # HPA: inside the tolerance band nothing changes, so small noise does not flap.
    if abs(usage_ratio - 1) <= CPU_TOLERANCE:
        return ready
    return math.ceil(ready * usage_ratio)


def _panic(
    spec: FunctionSpec, memory: ScalerMemory, want_panic: int, ready: int, now: float
) -> bool:
    """Knative: panic when the short window asks for at least panic_threshold x what is
    ready; it ends a stable window after its last cause."""
    capacity = max(ready, 1)
    if (
        want_panic > 0
        and want_panic >= capacity * spec.panic_threshold_pct / 100
        and want_panic > ready
    ):
        memory.last_panic_at = now
        if memory.panic_since is None:
            memory.panic_since = now
    elif (
        memory.panic_since is not None
        and memory.last_panic_at is not None
        and now - memory.last_panic_at >= spec.stable_window_s
    ):
        memory.panic_since = None
    return memory.panic_since is not None


def _metric_reason(
    spec: FunctionSpec, observed: Observed, per_replica: float, *, panic: bool
) -> str:
    metric = spec.scaling_metric
    if panic:
        panic_s = spec.stable_window_s * spec.panic_window_pct / 100
        return (
            f"panic: {metric} {observed.panic:.1f} over the {panic_s:g} s window, "
            f"target {per_replica:g} per replica"
        )
    if metric == "cpu":
        return ""
    return (
        f"{metric} {observed.stable:.1f} over the {spec.stable_window_s:g} s "
        f"window, target {per_replica:g} per replica"
    )


def _after_limits(
    spec: FunctionSpec,
    observed: Observed,
    memory: ScalerMemory,
    wanted: int,
    *,
    ready: int,
    now: float,
    panic: bool,
    reasons: list[str],
) -> int:
    """Cold-start demand, the scale rates, the scale-down delay and the zero grace."""
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
    wanted = _zero_grace(spec, observed, memory, wanted, now=now, panic=panic, reasons=reasons)
    return max(wanted, memory.desired) if panic else wanted


def _zero_grace(
    spec: FunctionSpec,
    observed: Observed,
    memory: ScalerMemory,
    wanted: int,
    *,
    now: float,
    panic: bool,
    reasons: list[str],
) -> int:
    """Zero only after the grace period without requests (and not while panicking)."""
    if wanted != 0 or memory.desired <= 0:
        return wanted
    last = observed.last_request_at
    quiet_since = last if last is not None else memory.created_at
    if now - quiet_since < spec.scale_to_zero_grace_s or panic:
        reasons.append(f"holding 1 until {spec.scale_to_zero_grace_s:g} s without requests")
        return 1
    reasons.append(f"no requests for {now - quiet_since:.0f} s: scale to zero")
    return 0
