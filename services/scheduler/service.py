"""The scheduler process: folds the history, then turns desired-vs-actual into node commands."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from functools import partial
from typing import Any

from prometheus_client import Gauge, Histogram

from events.envelope import Envelope
from events.projections.functions import FunctionView
from events.projections.world import Changes, World
from events.topics import READS
from events.types import (
    CommandsClaimed,
    DrainReplica,
    NodeDrained,
    Payload,
    PlacementPending,
    StartReplica,
)
from services.common.clock import SYSTEM_CLOCK, Clock, Every, Hearing
from services.common.forgetting import FORGET_AFTER_S, PRUNE_EVERY_S, forget_series
from services.common.isolation import Isolation
from services.common.journal import Journal
from services.common.loop import run_service
from services.common.runtime import ServiceContext, run
from services.scheduler.placement import Placer
from services.scheduler.plan import FunctionPlan, plan_function, revision_targets
from services.scheduler.rooms import Rooms
from services.scheduler.settings import Settings

PENDING = Gauge(
    "shoal_scheduler_pending_replicas", "Replicas that could not be placed", ["function"]
)
PLACEMENT_SECONDS = Histogram(
    "shoal_scheduler_placement_seconds",
    "Planning and commanding one replica's placement",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
)
SWEEP_S = 1.0


class Scheduler:
    name = "scheduler"
    topics = READS["scheduler"]

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.poll_ms = int(settings.plan_interval_s * 1000)
        self.world = World()
        self.hearing = Hearing(clock)
        self.rooms = Rooms()
        self.placer = Placer(policy=settings.policy, sample=settings.sample)
        self.dirty: set[str] = set()
        self.sweep = Every(SWEEP_S)
        self.pruning = Every(PRUNE_EVERY_S)
        self.journal: Journal | None = None
        self.isolation: Isolation | None = None
        self.ctx: ServiceContext | None = None

    def apply(self, envelope: Envelope) -> None:
        now = self.hearing.heard(envelope)
        changes = self.world.apply(envelope, now)
        if changes is not None:
            self._changed(changes, now)

    def _changed(self, changes: Changes, now: float) -> None:
        for replica_id in changes.replicas:
            view = self.world.replicas.get(replica_id)
            if view is not None:
                self.rooms.replica(view)
        for node in changes.nodes:
            if self._refresh(node, now):
                self.dirty.update(self.world.functions.functions)
        self.dirty |= changes.functions

    def _refresh(self, node: str, now: float) -> bool:
        view = self.world.nodes.nodes.get(node)
        if view is None:
            return False
        return self.rooms.node(view, now=now, stale_s=self.settings.heartbeat_stale_s)

    def _epoch(self) -> int:
        return self.ctx.epoch if self.ctx is not None else 0

    async def on_ready(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.world.shift(self.hearing.go_live())
        self.journal = Journal(ctx.producer, apply=self.apply, clock=self.clock)
        self.isolation = Isolation("scheduler", self.journal, ctx.log)
        ctx.log.info(
            "scheduler ready",
            functions=len(self.world.functions.functions),
            replicas=sum(1 for _ in self.world.replicas.live()),
            nodes=len(self.rooms.rooms),
        )

    async def after_poll(self, ctx: ServiceContext) -> None:
        now = self.clock.now()
        if self.sweep.due(now):
            for node in list(self.world.nodes.nodes):
                if self._refresh(node, now):
                    self.dirty.update(self.world.functions.functions)
            # Pending replicas wait for capacity or a back-off, and failed decisions for
            # their own back-off: try them again.
            self.dirty.update(f.name for f in self.world.functions.functions.values() if f.pending)
            if self.isolation is not None:
                self.dirty.update(self.isolation.quarantine.until)
        await self.housekeep(ctx)
        if self.dirty:
            await self.plan_dirty(now)

    async def housekeep(self, ctx: ServiceContext) -> None:
        """Forget what ended long ago (a standby too, which decides nothing)."""
        now = self.clock.now()
        if self.pruning.due(now):
            for name in self.world.prune(now - FORGET_AFTER_S):
                forget_series(PENDING, name)

    async def plan_dirty(self, now: float) -> None:
        dirty, self.dirty = self.dirty, set()
        acks: list[asyncio.Future[Any]] = []
        assert self.isolation is not None
        for function in sorted(dirty):
            view = self.world.functions.functions.get(function)
            if view is not None:
                await self.isolation.decide(function, now, partial(self._plan, view, now, acks))
        for node in self.world.nodes.nodes.values():
            if node.draining and not self.world.replicas.live_on(node.node):
                await self._command(NodeDrained(node=node.node), acks)
        await asyncio.gather(*acks)

    async def _plan(self, view: FunctionView, now: float, acks: list[asyncio.Future[Any]]) -> None:
        planned_at = time.perf_counter()
        name = view.name
        live = self.world.replicas.live_of(name)
        plan = FunctionPlan()
        for revision, desired, replicas in revision_targets(view, live):
            part = plan_function(
                function=name,
                spec=None if view.deleted else view.revisions[revision],
                revision=revision,
                desired=desired,
                replicas=replicas,
                rooms=self.rooms.rooms,
                placer=self.placer,
                failures=self.world.failures.of(name, revision),
                now=now,
                new_replica_id=f"{name}-{revision}-{uuid.uuid4().hex[:6]}",
            )
            plan.merge(part)
        for replica_id, revision, node in plan.starts:
            start = StartReplica(
                node=node,
                function=name,
                revision=revision,
                replica_id=replica_id,
                spec=view.revisions[revision],
                node_generation=self.world.nodes.generation(node),
                secrets=list(view.sealed.get(revision, ())),
                epoch=self._epoch(),
            )
            await self._command(start, acks)
        if plan.starts:
            PLACEMENT_SECONDS.observe((time.perf_counter() - planned_at) / len(plan.starts))
        for replica, reason in plan.drains:
            drain = DrainReplica(
                epoch=self._epoch(),
                node=replica.node,
                function=name,
                replica_id=replica.replica_id,
                drain_s=self.settings.drain_s,
                reason=reason,
            )
            await self._command(drain, acks)
        if not view.deleted:
            await self._report_pending(view, plan, acks)

    async def _report_pending(
        self, view: FunctionView, plan: FunctionPlan, acks: list[asyncio.Future[Any]]
    ) -> None:
        """Say what cannot be placed and why, when that changes; and when it is placed."""
        PENDING.labels(view.name).set(plan.pending)
        if (plan.pending, plan.pending_reason) == (view.pending, view.pending_reason):
            return
        if plan.pending or view.pending:
            pending = PlacementPending(
                function=view.name,
                revision=view.revision,
                pending=plan.pending,
                reason=plan.pending_reason or "placed",
            )
            await self._command(pending, acks)

    async def _command(self, payload: Payload, acks: list[asyncio.Future[Any]]) -> None:
        """Enqueue an event, applied to this scheduler's world at once; acks per round."""
        assert self.journal is not None
        _, acknowledged = await self.journal.enqueue(payload)
        acks.append(acknowledged)

    async def run(self, ctx: ServiceContext) -> None:
        await run_service(
            ctx,
            self,
            elected=lambda: self.world.fence.newest("scheduler"),
            subjects=lambda: {CommandsClaimed: self.world.nodes.joined},
        )


def main() -> None:
    scheduler = Scheduler(Settings.from_env(os.environ))
    run(scheduler.settings.common, scheduler.run)
