"""The scheduler process: folds history, then turns desired-vs-actual into node commands."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from prometheus_client import Gauge, Histogram

from events.bus import EventConsumer
from events.envelope import Envelope
from events.topics import FUNCTIONS, HEARTBEATS, NODE_COMMANDS, NODES, REPLICAS, SCALE
from events.types import DrainReplica, NodeDrained, Payload, PlacementPending, StartReplica
from services.common.runtime import ServiceContext, run
from services.scheduler.placement import Placer
from services.scheduler.plan import Failures, plan_function
from services.scheduler.settings import Settings
from services.scheduler.world import World

PENDING = Gauge(
    "shoal_scheduler_pending_replicas", "Replicas that could not be placed", ["function"]
)
PLACEMENT_SECONDS = Histogram(
    "shoal_scheduler_placement_seconds",
    "Planning and commanding one replica's placement",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
)


class Scheduler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.world = World()
        self.placer = Placer(policy=settings.policy, sample=settings.sample)
        self.pending_reasons: dict[str, str] = {}

    async def observe(self, envelope: Envelope) -> None:
        self.world.apply(envelope, now=time.time(), stale_s=self.settings.heartbeat_stale_s)

    async def _command(
        self, ctx: ServiceContext, payload: Payload, acks: list[asyncio.Future[Any]]
    ) -> None:
        """Enqueue a command and apply it to the world at once; acks are awaited per round."""
        envelope = ctx.producer.envelope(payload)
        acks.append(await ctx.producer.send(envelope))
        await self.observe(envelope)

    async def plan_dirty(self, ctx: ServiceContext) -> None:
        world = self.world
        dirty, world.dirty = world.dirty, set()
        now = time.time()
        acks: list[asyncio.Future[Any]] = []
        for function in sorted(dirty):
            planned_at = time.perf_counter()
            view = world.cluster.functions.get(function)
            spec = None if view is None or view.deleted else view.spec
            plan = plan_function(
                function=function,
                spec=spec,
                revision=view.revision if view else 1,
                desired=view.desired if view else None,
                replicas=world.replicas_of(function),
                rooms=world.rooms,
                placer=self.placer,
                failures=world.failures.get(function, Failures()),
                now=now,
                new_replica_id=f"{function}-{view.revision if view else 0}-{uuid.uuid4().hex[:6]}",
            )
            for replica_id, revision, node in plan.starts:
                assert view is not None
                # The placer reserved room already; the command's echo must not reserve twice.
                world.rooms[node].release(
                    function, view.revisions[revision].cpu, view.revisions[revision].memory_mb
                )
                await self._command(
                    ctx,
                    StartReplica(
                        node=node,
                        function=function,
                        revision=revision,
                        replica_id=replica_id,
                        spec=view.revisions[revision],
                    ),
                    acks,
                )
            if plan.starts:
                PLACEMENT_SECONDS.observe((time.perf_counter() - planned_at) / len(plan.starts))
            PENDING.labels(function).set(plan.pending)
            for replica, reason in plan.drains:
                await self._command(
                    ctx,
                    DrainReplica(
                        node=replica.node,
                        function=function,
                        replica_id=replica.replica_id,
                        drain_s=self.settings.drain_s,
                        reason=reason,
                    ),
                    acks,
                )
            if plan.pending and view is not None:
                if self.pending_reasons.get(function) != plan.pending_reason:
                    self.pending_reasons[function] = plan.pending_reason
                    await ctx.producer.publish(
                        PlacementPending(
                            function=function,
                            revision=view.revision,
                            pending=plan.pending,
                            reason=plan.pending_reason,
                        )
                    )
            else:
                self.pending_reasons.pop(function, None)
        for node in world.drained_nodes():
            await self._command(ctx, NodeDrained(node=node), acks)
        await asyncio.gather(*acks)

    async def run(self, ctx: ServiceContext) -> None:
        consumer = EventConsumer(
            ctx.settings.bus,
            name="scheduler",
            topics=[FUNCTIONS, SCALE, REPLICAS, NODES, HEARTBEATS, NODE_COMMANDS],
            handler=self.observe,
            dead_letters=ctx.producer,
            max_batch=5000,
        )
        await consumer.start()
        try:
            await consumer.catch_up()
            ctx.ready = True
            ctx.log.info(
                "scheduler ready",
                functions=len(self.world.cluster.functions),
                replicas=len(self.world.assigned),
                nodes=len(self.world.rooms),
            )
            last_sweep = 0.0
            while not ctx.stop.is_set():
                await consumer.poll_once(timeout_ms=int(self.settings.plan_interval_s * 1000))
                now = time.time()
                if now - last_sweep >= 1.0:
                    last_sweep = now
                    for node in list(self.world.rooms):
                        self.world.refresh_schedulable(node, now, self.settings.heartbeat_stale_s)
                    # Pending replicas wait for capacity or a back-off: try them again.
                    self.world.dirty.update(self.pending_reasons)
                if self.world.dirty:
                    await self.plan_dirty(ctx)
                await asyncio.sleep(0)
        finally:
            await consumer.stop()


def main() -> None:
    scheduler = Scheduler(Settings.from_env(os.environ))
    run(scheduler.settings.common, scheduler.run)
