"""The healer process: folds the log, then each tick declares lost nodes, cleans up nodes
that come back, rolls failing revisions back and repairs drift, each as an event."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import partial

from prometheus_client import Counter, Gauge

from events.envelope import Envelope
from events.projections.functions import FunctionView
from events.projections.nodes import NodeView
from events.projections.world import World
from events.topics import READS, REQUEST_STATS
from events.types import (
    CommandsClaimed,
    DriftRepaired,
    FunctionRolledBack,
    NodeClaimed,
    NodeLossSuspended,
    NodeLost,
    NodeReturned,
    Payload,
    RequestStats,
    ScaleClaimed,
    StopReplica,
)
from services.common.claims import Subjects
from services.common.clock import SYSTEM_CLOCK, Clock, Every, Hearing
from services.common.forgetting import FORGET_AFTER_S, PRUNE_EVERY_S
from services.common.isolation import Isolation
from services.common.journal import Journal
from services.common.loop import run_service
from services.common.runtime import ServiceContext, run
from services.healer.policy import (
    Graces,
    NodeLoss,
    NodeReturn,
    Repair,
    disruption,
    drift,
    lost_nodes,
    returned_nodes,
    rollback_for,
)
from services.healer.rollouts import HORIZON_S, Rollouts
from services.healer.settings import Settings

AFTER_DEAFNESS = 2
REPAIRS = Counter("shoal_healer_repairs_total", "Repairs the healer decided", ["kind"])
WATCHED = Gauge("shoal_healer_nodes", "Nodes the healer watches, by condition", ["condition"])


class Healer:
    name = "healer"
    topics = READS["healer"]

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.poll_ms = int(settings.tick_s * 1000)
        self.world = World()
        self.hearing = Hearing(clock)
        self.graces = Graces(
            report_s=settings.drift_grace_s,
            start_s=settings.start_grace_s,
            stop_s=settings.stop_grace_s,
        )
        self.watching_since = 0.0
        self.tick = Every(settings.tick_s)
        self.reconcile = Every(settings.reconcile_s)
        self.pruning = Every(PRUNE_EVERY_S)
        self.journal: Journal | None = None
        self.ctx: ServiceContext | None = None
        self.isolation: Isolation | None = None
        self.suspended = False
        """No node is declared lost while most of them are silent (a disruption)."""
        self.last_heard = float("-inf")
        """When this healer last heard any event, on its own clock."""
        self.rollouts = Rollouts(self.world, publish=self._publish_rollout, epoch=self._epoch)

    def apply(self, envelope: Envelope) -> None:
        heard = self.hearing.heard(envelope)
        timeout = self.settings.node_timeout_s
        if self.hearing.live and heard - self.last_heard > timeout:
            # This healer heard nothing at all for longer than a node may be silent: it was
            # deaf (the broker away, its own loop stuck). Every node gets a fresh timeout,
            # and two more: after a broker restart, partitions come back one by one, and a
            # node's heartbeats may wait for theirs.
            self.watching_since = heard + AFTER_DEAFNESS * timeout
            if self.ctx is not None:
                deaf_s = round(heard - self.last_heard, 1)
                self.ctx.log.warning(
                    "heard nothing for a while; every node gets time", deaf_s=deaf_s
                )
        self.last_heard = max(self.last_heard, heard)
        if isinstance(envelope.data, RequestStats):
            self.rollouts.heard(envelope.data, heard, envelope.id, live=self.hearing.live)
        else:
            self.world.apply(envelope, heard)

    def _epoch(self) -> int:
        return self.ctx.epoch if self.ctx is not None else 0

    async def on_ready(self, ctx: ServiceContext) -> None:
        offset = self.hearing.go_live()
        self.world.shift(offset)
        self.rollouts.calls.shift(offset)
        self.ctx = ctx
        self.journal = Journal(ctx.producer, apply=self.apply, clock=self.clock)
        self.isolation = Isolation("healer", self.journal, ctx.log)
        self.watching_since = self.last_heard = self.clock.now()
        self.reconcile.due(self.watching_since)
        ctx.log.info(
            "healer ready",
            nodes=len(self.world.nodes.nodes),
            replicas=sum(1 for _ in self.world.replicas.live()),
            functions=len(self.world.functions.functions),
        )

    async def housekeep(self, ctx: ServiceContext) -> None:
        """Forget what ended long ago (a standby too, which decides nothing)."""
        now = self.clock.now()
        if self.pruning.due(now):
            self.rollouts.calls.forget(set(self.world.prune(now - FORGET_AFTER_S)))

    async def after_poll(self, ctx: ServiceContext) -> None:
        await self.housekeep(ctx)
        now = self.clock.now()
        if self.tick.due(now):
            await self.heal(now, reconcile=self.reconcile.due(now))

    async def heal(self, now: float, *, reconcile: bool) -> None:
        """Each decision about one node or function is isolated from the others."""
        assert self.isolation is not None
        decide = self.isolation.decide
        nodes = list(self.world.nodes.nodes.values())
        lost = sum(1 for n in nodes if n.lost)
        WATCHED.labels("lost").set(lost)
        WATCHED.labels("live").set(len(nodes) - lost)
        if await self._deaf(now, nodes):
            losses = []
        else:
            losses = lost_nodes(nodes, now, self.settings.node_timeout_s, self.watching_since)
        for loss in losses:
            await decide(f"node/{loss.node}", now, partial(self._declare_lost, loss))
        for back in returned_nodes(nodes, self.watching_since):
            await decide(f"node/{back.node}", now, partial(self._welcome_back, back))
        for view in list(self.world.functions.functions.values()):
            await decide(view.name, now, partial(self._judge, view, now))
        self.rollouts.tidy()
        if reconcile:
            for node in nodes:
                await decide(f"node/{node.node}", now, partial(self._reconcile, node))

    async def _deaf(self, now: float, nodes: list[NodeView]) -> bool:
        """Whether this healer should suspect itself rather than the nodes; says so once
        when a disruption starts and once when it ends (then every node gets a fresh
        timeout, as after a restart)."""
        found = disruption(nodes, now, self.settings.node_timeout_s, self.watching_since)
        if (found is not None) == self.suspended:
            return self.suspended
        self.suspended = found is not None
        if found is None:
            self.watching_since = max(self.watching_since, now)
            said = NodeLossSuspended(suspended=False, reason="nodes are heard again")
        else:
            said = NodeLossSuspended(
                suspended=True,
                reason=found.reason,
                silent_nodes=found.silent,
                total_nodes=found.total,
            )
        await self._decide(said, "loss_suspended" if found else "loss_resumed")
        return self.suspended

    async def _judge(self, view: FunctionView, now: float) -> None:
        rollback = rollback_for(
            view,
            self.world.failures,
            now,
            progress_deadline_s=self.settings.progress_deadline_s,
            failure_threshold=self.settings.rollback_failures,
        )
        if rollback is not None:
            rolled = FunctionRolledBack(
                function=rollback.function,
                from_revision=rollback.from_revision,
                to_revision=rollback.to_revision,
                reason=rollback.reason,
                epoch=self._epoch(),
            )
            await self._decide(rolled, "rollback", function=view.name, reason=rollback.reason)
        else:
            await self.rollouts.judge(view, now)

    async def _declare_lost(self, loss: NodeLoss) -> None:
        view = self.world.nodes.nodes[loss.node]
        last = view.last_heartbeat_at.isoformat() if view.last_heartbeat_at else ""
        event = NodeLost(
            node=loss.node,
            last_heartbeat_at=last,
            timeout_s=self.settings.node_timeout_s,
            evidence=loss.evidence,
            generation=view.generation,
            epoch=self._epoch(),
        )
        await self._decide(event, "node_lost", node=loss.node, evidence=loss.evidence)

    async def _welcome_back(self, back: NodeReturn) -> None:
        """Stop what moved away while the node was lost, then say it is back."""
        node = self.world.nodes.nodes[back.node]
        moved = self.world.replicas.moved_from(back.node, node.lost_through)
        for replica in moved:
            reason = f"moved to another node while {back.node} was lost"
            await self._stop(back.node, replica.function, replica.replica_id, reason, "stop_moved")
        returned = NodeReturned(
            node=back.node,
            lost_for_s=round(back.lost_for_s, 3),
            moved_replicas=[r.replica_id for r in moved],
            epoch=self._epoch(),
        )
        await self._decide(returned, "node_returned", node=back.node)

    async def _reconcile(self, node: NodeView) -> None:
        replicas = self.world.replicas
        placed = replicas.live_on(node.node)
        for repair in drift(node, placed, replicas.replicas, replicas.leave_unknown, self.graces):
            await self._repair(repair)

    async def _repair(self, repair: Repair) -> None:
        stop = await self._stop(
            repair.node,
            repair.function or "unknown",
            repair.replica_id,
            f"drift: {repair.reason}",
            f"drift_{repair.kind}_stop",
        )
        repaired = DriftRepaired(
            node=repair.node,
            kind=repair.kind,
            replica_id=repair.replica_id,
            function=repair.function,
            revision=repair.revision,
            reason=repair.reason,
            epoch=self._epoch(),
        )
        await self._decide(
            repaired,
            f"drift_{repair.kind}",
            causation_id=stop.id,
            node=repair.node,
            replica=repair.replica_id,
            reason=repair.reason,
        )

    async def _stop(
        self, node: str, function: str, replica_id: str, reason: str, kind: str
    ) -> Envelope:
        stop = StopReplica(
            node=node,
            function=function,
            replica_id=replica_id,
            reason=reason,
            epoch=self._epoch(),
        )
        return await self._decide(stop, kind, node=node, function=function, replica=replica_id)

    async def _decide(
        self, payload: Payload, kind: str, causation_id: str | None = None, **why: object
    ) -> Envelope:
        """Publish a decision and apply it at once (its echo from Kafka is skipped)."""
        assert self.journal is not None and self.ctx is not None
        envelope = await self.journal.publish(payload, causation_id=causation_id)
        REPAIRS.labels(kind).inc()
        self.ctx.log.info("repair", kind=kind, event_id=envelope.id, type=envelope.type, **why)
        return envelope

    async def _publish_rollout(self, payload: Payload, causation_id: str | None) -> Envelope:
        kind = "canary_abort" if isinstance(payload, FunctionRolledBack) else "canary"
        return await self._decide(
            payload, kind, causation_id=causation_id, function=getattr(payload, "function", "")
        )

    def _subjects(self) -> Subjects:
        """The healer stops replicas on nodes, declares nodes lost, and rolls functions
        back."""
        nodes = self.world.nodes.joined
        functions = self.world.functions.functions.keys()
        return {CommandsClaimed: nodes, NodeClaimed: nodes, ScaleClaimed: functions}

    async def run(self, ctx: ServiceContext) -> None:
        """Request stats older than the canaries' horizon are not read back at all."""
        since = self.clock.wall() - timedelta(seconds=HORIZON_S)
        await run_service(
            ctx,
            self,
            since={REQUEST_STATS: since},
            elected=lambda: self.world.fence.newest("healer"),
            subjects=self._subjects,
        )


def main() -> None:
    healer = Healer(Settings.from_env(os.environ))
    run(healer.settings.common, healer.run)
