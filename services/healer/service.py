"""The healer process: folds the log, then each tick declares lost nodes, cleans up nodes
that come back, rolls failing revisions back and repairs drift, each as an event."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge

from events.bus import EventConsumer
from events.envelope import Envelope
from events.topics import FUNCTIONS, HEARTBEATS, NODE_COMMANDS, NODES, REPLICAS
from events.types import (
    DriftRepaired,
    FunctionRolledBack,
    NodeLost,
    NodeReturned,
    Payload,
    StopReplica,
)
from services.common.runtime import ServiceContext, run
from services.healer.policy import drift, lost_nodes, returned_nodes, rollback_for
from services.healer.settings import Settings
from services.healer.world import HealerWorld

REPAIRS = Counter("shoal_healer_repairs_total", "Repairs the healer decided", ["kind"])
WATCHED = Gauge("shoal_healer_nodes", "Nodes the healer watches, by condition", ["condition"])
FORGET_ENDS_AFTER_S = 600.0


class Healer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.world = HealerWorld(
            drift_grace_s=settings.drift_grace_s, stop_grace_s=settings.stop_grace_s
        )
        self.watching_since = 0.0
        self.own: set[str] = set()
        """Ids of events this healer published and already applied."""

    async def observe(self, envelope: Envelope) -> None:
        if envelope.id in self.own:
            self.own.discard(envelope.id)
            return
        self.world.apply(envelope)

    async def _decide(
        self,
        ctx: ServiceContext,
        payload: Payload,
        kind: str,
        causation_id: str | None = None,
        **why: object,
    ) -> Envelope:
        """Publish a decision and apply it at once (its echo from Kafka is skipped)."""
        envelope = await ctx.producer.publish(payload, causation_id=causation_id)
        self.own.add(envelope.id)
        self.world.apply(envelope)
        REPAIRS.labels(kind).inc()
        ctx.log.info("repair", kind=kind, event_id=envelope.id, type=envelope.type, **why)
        return envelope

    async def _stop(
        self, ctx: ServiceContext, node: str, function: str, replica_id: str, reason: str, kind: str
    ) -> Envelope:
        return await self._decide(
            ctx,
            StopReplica(node=node, function=function, replica_id=replica_id, reason=reason),
            kind,
            node=node,
            function=function,
            replica=replica_id,
        )

    async def heal(self, ctx: ServiceContext, now: float, *, reconcile: bool) -> None:
        world, settings = self.world, self.settings
        lost = sum(1 for w in world.nodes.values() if w.lost_at is not None)
        WATCHED.labels("lost").set(lost)
        WATCHED.labels("live").set(len(world.nodes) - lost)
        for loss in lost_nodes(
            world.nodes.values(), now, settings.node_timeout_s, self.watching_since
        ):
            last = datetime.fromtimestamp(loss.last_heartbeat_at, UTC)
            await self._decide(
                ctx,
                NodeLost(
                    node=loss.node,
                    last_heartbeat_at=last.isoformat(),
                    timeout_s=settings.node_timeout_s,
                    evidence=loss.evidence,
                ),
                "node_lost",
                node=loss.node,
                evidence=loss.evidence,
            )
        for back in returned_nodes(world.nodes.values()):
            for replica in back.stops:
                await self._stop(
                    ctx,
                    back.node,
                    replica.function,
                    replica.replica_id,
                    f"moved to another node while {back.node} was lost",
                    "stop_moved",
                )
            await self._decide(
                ctx,
                NodeReturned(
                    node=back.node,
                    lost_for_s=round(back.lost_for_s, 3),
                    moved_replicas=[r.replica_id for r in back.stops],
                ),
                "node_returned",
                node=back.node,
            )
        for name, health in list(world.health.items()):
            rollback = rollback_for(
                name,
                health,
                now,
                progress_deadline_s=settings.progress_deadline_s,
                failure_threshold=settings.rollback_failures,
            )
            if rollback is not None:
                await self._decide(
                    ctx,
                    FunctionRolledBack(
                        function=name,
                        from_revision=rollback.from_revision,
                        to_revision=rollback.to_revision,
                        reason=rollback.reason,
                    ),
                    "rollback",
                    function=name,
                    reason=rollback.reason,
                )
        if reconcile:
            await self._reconcile(ctx, now)

    async def _reconcile(self, ctx: ServiceContext, now: float) -> None:
        world = self.world
        world.forget_old_ends(now - FORGET_ENDS_AFTER_S)
        for watch in list(world.nodes.values()):
            for repair in drift(
                watch,
                world.placed,
                world.ended,
                grace_s=self.settings.drift_grace_s,
                start_grace_s=self.settings.start_grace_s,
            ):
                stop = await self._stop(
                    ctx,
                    repair.node,
                    repair.function or "unknown",
                    repair.replica_id,
                    f"drift: {repair.reason}",
                    f"drift_{repair.kind}_stop",
                )
                await self._decide(
                    ctx,
                    DriftRepaired(
                        node=repair.node,
                        kind=repair.kind,
                        replica_id=repair.replica_id,
                        function=repair.function,
                        revision=repair.revision,
                        reason=repair.reason,
                    ),
                    f"drift_{repair.kind}",
                    node=repair.node,
                    replica=repair.replica_id,
                    reason=repair.reason,
                    causation_id=stop.id,
                )

    async def run(self, ctx: ServiceContext) -> None:
        consumer = EventConsumer(
            ctx.settings.bus,
            name="healer",
            topics=[FUNCTIONS, REPLICAS, NODES, HEARTBEATS, NODE_COMMANDS],
            handler=self.observe,
            dead_letters=ctx.producer,
            max_batch=5000,
        )
        await consumer.start()
        try:
            await consumer.catch_up()
            self.watching_since = time.time()
            ctx.ready = True
            ctx.log.info(
                "healer ready",
                nodes=len(self.world.nodes),
                replicas=len(self.world.placed),
                functions=len(self.world.health),
            )
            last_tick = last_reconcile = 0.0
            while not ctx.stop.is_set():
                await consumer.poll_once(timeout_ms=int(self.settings.tick_s * 1000))
                now = time.time()
                if now - last_tick < self.settings.tick_s:
                    continue
                last_tick = now
                reconcile = now - last_reconcile >= self.settings.reconcile_s
                if reconcile:
                    last_reconcile = now
                await self.heal(ctx, now, reconcile=reconcile)
        finally:
            await consumer.stop()


def main() -> None:
    healer = Healer(Settings.from_env(os.environ))
    run(healer.settings.common, healer.run)
