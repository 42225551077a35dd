"""The autoscaler process: metric windows from Kafka, a decision per function per tick
(and at once on cold-start demand), published only when the count changes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field

from prometheus_client import Gauge

from events.bus import EventConsumer
from events.envelope import Envelope
from events.state import ClusterState, apply
from events.topics import CONTAINER_STATS, DEMAND, FUNCTIONS, REPLICAS, REQUEST_STATS, SCALE
from events.types import (
    ColdStartDemand,
    ContainerStats,
    FunctionDeleted,
    FunctionDeployed,
    FunctionUpdated,
    RequestStats,
    ScaleDecision,
    ScaleRequested,
)
from services.autoscaler.decide import Observed, ScalerMemory, decide, initial_desired
from services.autoscaler.settings import Settings
from services.autoscaler.windows import MetricWindow
from services.common.runtime import ServiceContext, run

DESIRED = Gauge("shoal_autoscaler_desired_replicas", "Desired replicas", ["function"])
READY = Gauge("shoal_autoscaler_ready_replicas", "Ready replicas", ["function"])
PANIC = Gauge("shoal_autoscaler_panic", "1 while the function is in panic mode", ["function"])


@dataclass
class FunctionMetrics:
    concurrency: MetricWindow = field(default_factory=lambda: MetricWindow(horizon_s=3600))
    rps: MetricWindow = field(default_factory=lambda: MetricWindow(horizon_s=3600))
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Replica -> (time, CPU fraction of its limit), the latest sample."""
    demand_at: float = 0.0
    queued: int = 0
    last_stats_id: str | None = None
    """The newest stats or demand event: the cause of a decision made from the metrics."""
    last_spec_id: str | None = None
    """The deployment or manual scale that a decision from the spec follows."""


class Autoscaler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster = ClusterState()
        self.metrics: dict[str, FunctionMetrics] = {}
        self.memory: dict[str, ScalerMemory] = {}
        self.urgent: set[str] = set()
        self.caught_up = False
        self.decided_at: dict[str, float] = {}
        """Function -> time of its newest scale decision."""

    def _metrics(self, function: str) -> FunctionMetrics:
        return self.metrics.setdefault(function, FunctionMetrics())

    async def observe(self, envelope: Envelope) -> None:
        apply(self.cluster, envelope)
        event, at = envelope.data, envelope.time.timestamp()
        if isinstance(event, RequestStats):
            metrics = self._metrics(event.function)
            metrics.concurrency.add(at, event.mean_concurrency * event.interval_s)
            metrics.rps.add(at, event.requests)
            metrics.queued = event.queue_depth
            metrics.last_stats_id = envelope.id
        elif isinstance(event, ContainerStats):
            self._metrics(event.function).cpu[event.replica_id] = (at, event.cpu_fraction)
        elif isinstance(event, ColdStartDemand):
            metrics = self._metrics(event.function)
            metrics.demand_at, metrics.queued = at, max(metrics.queued, event.queued)
            metrics.last_stats_id = envelope.id
            self.urgent.add(event.function)
        elif isinstance(event, ScaleDecision):
            memory = self.memory.setdefault(event.function, ScalerMemory(desired=event.desired))
            memory.desired = event.desired
            self.decided_at[event.function] = max(at, self.decided_at.get(event.function, at))
        elif isinstance(event, FunctionDeployed):
            # Decisions travel on another topic: one read first may be about this deployment.
            if self.decided_at.get(event.function, float("-inf")) < at:
                self.memory.pop(event.function, None)
                self.metrics.pop(event.function, None)
            self._metrics(event.function).last_spec_id = envelope.id
            self.urgent.add(event.function)
        elif isinstance(event, FunctionUpdated | ScaleRequested | FunctionDeleted):
            if not isinstance(event, FunctionDeleted):
                self._metrics(event.function).last_spec_id = envelope.id
            self.urgent.add(event.function)

    def _observed(self, function: str, now: float) -> Observed:
        view = self.cluster.functions[function]
        spec = view.spec
        metrics = self._metrics(function)
        window = metrics.rps if spec.scaling_metric == "rps" else metrics.concurrency
        panic_s = spec.stable_window_s * spec.panic_window_pct / 100
        fresh_cpu = [
            fraction
            for at, fraction in metrics.cpu.values()
            if now - at <= self.settings.cpu_sample_fresh_s
        ]
        return Observed(
            stable=window.average(now, spec.stable_window_s),
            panic=window.average(now, panic_s),
            cpu_fraction=sum(fresh_cpu) / len(fresh_cpu) if fresh_cpu else None,
            last_request_at=metrics.rps.last_nonzero_at(),
            queued=metrics.queued,
        )

    async def decide_for(self, ctx: ServiceContext, function: str, now: float) -> None:
        view = self.cluster.functions.get(function)
        if view is None or view.deleted:
            return
        ready = sum(1 for r in self.cluster.live_replicas(function) if r.state == "ready")
        memory = self.memory.get(function)
        if memory is None:
            desired = initial_desired(view.spec)
            self.memory[function] = ScalerMemory(desired=desired, created_at=now)
            reason, panic = "initial scale of a new function", False
            inputs = {"initial_scale": float(view.spec.initial_scale)}
            cause = self._metrics(function).last_spec_id
        elif view.pinned_replicas is not None:
            desired = memory.desired = view.pinned_replicas
            reason, panic = "manual scale requested through the api", False
            inputs = {"manual_replicas": float(view.pinned_replicas)}
            cause = self._metrics(function).last_spec_id
        else:
            decision = decide(
                view.spec, self._observed(function, now), memory, ready=ready, now=now
            )
            desired, reason, panic, inputs = (
                decision.desired,
                decision.reason,
                decision.panic,
                decision.inputs,
            )
            cause = self._metrics(function).last_stats_id
        DESIRED.labels(function).set(desired)
        READY.labels(function).set(ready)
        PANIC.labels(function).set(int(panic))
        if desired == view.desired:
            return
        previous = view.desired or 0
        envelope = await ctx.producer.publish(
            ScaleDecision(
                function=function,
                revision=view.revision,
                previous=previous,
                desired=desired,
                panic=panic,
                reason=reason,
                inputs=inputs,
            ),
            causation_id=cause,
        )
        apply(self.cluster, envelope)
        ctx.log.info(
            "scaled",
            function=function,
            previous=previous,
            desired=desired,
            reason=reason,
            event_id=envelope.id,
        )

    async def run(self, ctx: ServiceContext) -> None:
        consumer = EventConsumer(
            ctx.settings.bus,
            name="autoscaler",
            topics=[FUNCTIONS, SCALE, REPLICAS, REQUEST_STATS, CONTAINER_STATS, DEMAND],
            handler=self.observe,
            dead_letters=ctx.producer,
            max_batch=5000,
        )
        await consumer.start()
        try:
            await consumer.catch_up()
            ctx.ready = True
            ctx.log.info("autoscaler ready", functions=len(self.cluster.functions))
            self.urgent.update(self.cluster.functions)
            next_tick = time.time()
            while not ctx.stop.is_set():
                await consumer.poll_once(timeout_ms=20)
                now = time.time()
                due = set(self.urgent)
                self.urgent.clear()
                if now >= next_tick:
                    due.update(self.cluster.functions)
                    next_tick = now + self.settings.tick_s
                for function in sorted(due):
                    await self.decide_for(ctx, function, now)
                await asyncio.sleep(0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


def main() -> None:
    autoscaler = Autoscaler(Settings.from_env(os.environ))
    run(autoscaler.settings.common, autoscaler.run)
