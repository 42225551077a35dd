"""The autoscaler process: metric windows from Kafka, a decision per function per tick
(and at once on cold-start demand or a change of spec), published only when the count
changes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from prometheus_client import Gauge

from events.envelope import Envelope
from events.projections.functions import FunctionView
from events.projections.world import World
from events.topics import CONTAINER_STATS, DEMAND, READS, REQUEST_STATS
from events.types import (
    CanaryAnalysed,
    ColdStartDemand,
    ContainerStats,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionUpdated,
    RequestStats,
    RevisionTagged,
    ScaleClaimed,
    ScaleDecision,
    ScaleRequested,
    TrafficSplit,
)
from services.autoscaler.decide import Observed, ScalerMemory, decide_function
from services.autoscaler.settings import Settings
from services.autoscaler.windows import MetricWindow
from services.common.clock import SYSTEM_CLOCK, Clock, Every, Hearing, written_at
from services.common.forgetting import FORGET_AFTER_S, PRUNE_EVERY_S, forget_series
from services.common.isolation import Isolation
from services.common.journal import Journal
from services.common.loop import run_service
from services.common.runtime import ServiceContext, run

DESIRED = Gauge("shoal_autoscaler_desired_replicas", "Desired replicas", ["function"])
READY = Gauge("shoal_autoscaler_ready_replicas", "Ready replicas", ["function"])
PANIC = Gauge("shoal_autoscaler_panic", "1 while the function is in panic mode", ["function"])
HORIZON_S = 3600
METRICS = (RequestStats, ContainerStats, ColdStartDemand)
SPEC_CHANGES = (
    FunctionDeployed,
    FunctionUpdated,
    ScaleRequested,
    FunctionDeleted,
    TrafficSplit,
    RevisionTagged,
    CanaryAnalysed,
    FunctionRolledBack,
)
"""What changes a decision at once: the spec, a manual count, or how calls are shared."""
METRIC_TOPICS = (REQUEST_STATS, CONTAINER_STATS, DEMAND)


@dataclass
class FunctionMetrics:
    """One incarnation's metric windows; times are when this process heard the samples."""

    first_revision: int
    concurrency: MetricWindow = field(default_factory=lambda: MetricWindow(horizon_s=HORIZON_S))
    rps: MetricWindow = field(default_factory=lambda: MetricWindow(horizon_s=HORIZON_S))
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Replica -> (when heard, CPU fraction of its limit), the latest sample."""
    queued: int = 0
    last_stats_id: str | None = None
    """The newest stats or demand event: the cause of a decision made from the metrics."""
    memory: ScalerMemory | None = None


class Autoscaler:
    name = "autoscaler"
    topics = READS["autoscaler"]
    poll_ms = 20

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.world = World()
        self.hearing = Hearing(clock)
        self.metrics: dict[str, FunctionMetrics] = {}
        self.spec_causes: dict[str, str] = {}
        """Function -> the deployment or manual scale a decision from the spec follows."""
        self.urgent: set[str] = set()
        self.tick = Every(settings.tick_s)
        self.pruning = Every(PRUNE_EVERY_S)
        self.backlog: list[Envelope] | None = []
        """Metrics read from the history, placed in time once the history is read."""
        self.journal: Journal | None = None
        self.isolation: Isolation | None = None

    def apply(self, envelope: Envelope) -> None:
        data, heard = envelope.data, self.hearing.heard(envelope)
        if isinstance(data, METRICS):
            if self.backlog is not None:
                self.backlog.append(envelope)
            else:
                self.observe(envelope, heard)
            return
        changed = self.world.apply(envelope, heard) is not None
        waits = isinstance(data, CanaryAnalysed) and data.decision == "wait"
        if changed and isinstance(data, SPEC_CHANGES) and not waits:
            if not isinstance(data, FunctionDeleted):
                self.spec_causes[data.function] = envelope.id
            self.urgent.add(data.function)

    def observe(self, envelope: Envelope, heard_at: float) -> None:
        """Put one metrics event in its function's windows."""
        event = envelope.data
        metrics = self._metrics(event.key)
        if metrics is None:
            return
        if isinstance(event, RequestStats):
            metrics.concurrency.add(heard_at, event.mean_concurrency * event.interval_s)
            metrics.rps.add(heard_at, event.requests)
            metrics.queued = event.queue_depth
            metrics.last_stats_id = envelope.id
        elif isinstance(event, ContainerStats):
            metrics.cpu[event.replica_id] = (heard_at, event.cpu_fraction)
        elif isinstance(event, ColdStartDemand):
            metrics.queued = max(metrics.queued, event.queued)
            metrics.last_stats_id = envelope.id
            self.urgent.add(event.function)

    def _metrics(self, function: str) -> FunctionMetrics | None:
        """The windows of the function's current incarnation (new ones for a new one)."""
        view = self.world.function(function)
        if view is None:
            self.metrics.pop(function, None)
            return None
        found = self.metrics.get(function)
        if found is None or found.first_revision != view.first_revision:
            found = self.metrics[function] = FunctionMetrics(first_revision=view.first_revision)
        return found

    async def on_ready(self, ctx: ServiceContext) -> None:
        offset = self.hearing.go_live()
        self.world.shift(offset)
        self._place_backlog(offset)
        self.journal = Journal(ctx.producer, apply=self.apply, clock=self.clock)
        self.isolation = Isolation("autoscaler", self.journal, ctx.log)
        self.urgent.update(self.world.functions.functions)
        ctx.log.info("autoscaler ready", functions=len(self.world.functions.functions))

    def _place_backlog(self, offset: float) -> None:
        """Metrics from the history, placed on this process's clock as every history event
        is (`Hearing`); those older than the windows' horizon are dropped."""
        backlog, self.backlog = self.backlog or [], None
        oldest = self.clock.now() - HORIZON_S
        for envelope in backlog:
            heard = written_at(envelope) + offset
            if heard >= oldest:
                self.observe(envelope, heard)

    async def housekeep(self, ctx: ServiceContext) -> None:
        """Forget what ended long ago (a standby too, which decides nothing)."""
        now = self.clock.now()
        if self.pruning.due(now):
            self._forget(self.world.prune(now - FORGET_AFTER_S))

    async def after_poll(self, ctx: ServiceContext) -> None:
        await self.housekeep(ctx)
        now = self.clock.now()
        due, self.urgent = self.urgent, set()
        if self.tick.due(now):
            due.update(self.world.functions.functions)
        assert self.isolation is not None
        for function in sorted(due):
            view = self.world.function(function)
            if view is None:
                self.metrics.pop(function, None)
                continue
            await self.isolation.decide(function, now, partial(self.decide_for, ctx, view, now))

    def _forget(self, gone: list[str]) -> None:
        for name in gone:
            self.metrics.pop(name, None)
            self.spec_causes.pop(name, None)
            for gauge in (DESIRED, READY, PANIC):
                forget_series(gauge, name)

    def _observed(self, view: FunctionView, metrics: FunctionMetrics, now: float) -> Observed:
        spec = view.spec
        window = metrics.rps if spec.scaling_metric == "rps" else metrics.concurrency
        fresh_s = self.settings.cpu_sample_fresh_s
        metrics.cpu = {r: s for r, s in metrics.cpu.items() if now - s[0] <= fresh_s}
        fresh_cpu = [fraction for _, fraction in metrics.cpu.values()]
        return Observed(
            stable=window.average(now, spec.stable_window_s),
            panic=window.average(now, spec.stable_window_s * spec.panic_window_pct / 100),
            cpu_fraction=sum(fresh_cpu) / len(fresh_cpu) if fresh_cpu else None,
            last_request_at=metrics.rps.last_nonzero_at(),
            queued=metrics.queued,
        )

    async def decide_for(self, ctx: ServiceContext, view: FunctionView, now: float) -> None:
        metrics = self._metrics(view.name)
        assert metrics is not None and self.journal is not None
        if metrics.memory is None:
            metrics.memory = ScalerMemory(desired=view.desired or 0, created_at=now)
        ready = len(self.world.ready_replicas(view.name))
        decision = decide_function(
            view.spec,
            self._observed(view, metrics, now),
            metrics.memory,
            desired=view.desired,
            pinned=view.pinned_replicas,
            ready=ready,
            now=now,
            cap=self.settings.max_replicas,
        )
        DESIRED.labels(view.name).set(decision.desired)
        READY.labels(view.name).set(ready)
        PANIC.labels(view.name).set(int(decision.panic))
        per_revision = view.traffic.replicas(decision.desired)
        if decision.desired == view.desired and per_revision == view.desired_split:
            return
        cause = (
            self.spec_causes.get(view.name) if decision.cause == "spec" else metrics.last_stats_id
        )
        previous = view.desired or 0
        envelope = await self.journal.publish(
            ScaleDecision(
                function=view.name,
                revision=view.revision,
                previous=previous,
                desired=decision.desired,
                panic=decision.panic,
                reason=decision.reason,
                inputs=decision.inputs,
                per_revision=per_revision,
                epoch=ctx.epoch,
            ),
            causation_id=cause,
        )
        ctx.log.info(
            "scaled",
            function=view.name,
            previous=previous,
            desired=decision.desired,
            per_revision=per_revision,
            reason=decision.reason,
            event_id=envelope.id,
        )

    async def run(self, ctx: ServiceContext) -> None:
        """Metrics older than the horizon are not read back at all."""
        since = self.clock.wall() - timedelta(seconds=HORIZON_S)
        await run_service(
            ctx,
            self,
            since=dict.fromkeys(METRIC_TOPICS, since),
            elected=lambda: self.world.fence.newest("autoscaler"),
            subjects=lambda: {ScaleClaimed: self.world.functions.functions.keys()},
        )


def main() -> None:
    autoscaler = Autoscaler(Settings.from_env(os.environ))
    run(autoscaler.settings.common, autoscaler.run)
