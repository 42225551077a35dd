"""The healer's memory, folded from the log: node liveness, where replicas run, and how
each revision of each function has fared."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.envelope import Envelope
from events.types import (
    DrainReplica,
    DriftRepaired,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionUpdated,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeReturned,
    ReplicaDraining,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    StartReplica,
    StopReplica,
)
from services.healer.policy import (
    FunctionHealth,
    Heartbeat,
    NodeWatch,
    Placed,
    RevisionHealth,
)


@dataclass
class HealerWorld:
    drift_grace_s: float
    stop_grace_s: float
    nodes: dict[str, NodeWatch] = field(default_factory=dict)
    placed: dict[str, Placed] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    """Ended replicas -> from when a node still reporting one is drift."""
    health: dict[str, FunctionHealth] = field(default_factory=dict)

    def _watch(self, node: str, at: float) -> NodeWatch:
        watch = self.nodes.get(node)
        if watch is None:
            watch = self.nodes[node] = NodeWatch(node=node, joined_at=at)
        return watch

    def _end(self, replica_id: str, quiet_until: float) -> None:
        self.ended[replica_id] = max(quiet_until, self.ended.get(replica_id, 0.0))
        self.placed.pop(replica_id, None)

    def apply(self, envelope: Envelope) -> None:
        event = envelope.data
        at = envelope.time.timestamp()
        if isinstance(event, FunctionDeployed | FunctionUpdated):
            health = self.health.get(event.function)
            if health is None or (isinstance(event, FunctionDeployed) and health.deleted):
                health = self.health[event.function] = FunctionHealth(current=event.revision)
            record = health.revisions.setdefault(event.revision, RevisionHealth(created_at=at))
            record.created_at = min(record.created_at, at)
            health.current = max(health.current, event.revision)
        elif isinstance(event, FunctionRolledBack):
            health = self.health.get(event.function)
            if health is not None:
                health.rolled_back.add(event.from_revision)
                health.current = event.to_revision
        elif isinstance(event, FunctionDeleted):
            if event.function in self.health:
                self.health[event.function].deleted = True
        elif isinstance(event, StartReplica):
            if event.replica_id not in self.placed and event.replica_id not in self.ended:
                replica = Placed(
                    replica_id=event.replica_id,
                    function=event.function,
                    revision=event.revision,
                    node=event.node,
                    commanded_at=at,
                )
                watch = self.nodes.get(event.node)
                if watch is not None and watch.lost_at is not None and at < watch.lost_at:
                    # Read after the loss from another topic: it was on the node when lost.
                    watch.moved.append(replica)
                    self._end(event.replica_id, watch.lost_at + self.stop_grace_s)
                else:
                    self.placed[event.replica_id] = replica
        elif isinstance(event, DrainReplica | StopReplica | ReplicaDraining):
            if event.replica_id in self.placed:
                self.placed[event.replica_id].leaving = True
        elif isinstance(event, ReplicaStarting | ReplicaReady):
            known = self.placed.get(event.replica_id)
            if known is not None:
                known.acknowledged_at = known.acknowledged_at or at
                known.ready = known.ready or isinstance(event, ReplicaReady)
            if isinstance(event, ReplicaReady):
                self._revision(event.function, event.revision, at).ever_ready = True
        elif isinstance(event, ReplicaStopped | ReplicaFailed):
            first = event.replica_id not in self.ended
            self._end(event.replica_id, at + self.drift_grace_s)
            if isinstance(event, ReplicaFailed) and first:
                revision = self._revision(event.function, event.revision, at)
                revision.failures += 1
                revision.last_failure = event.summary()[:200]
        elif isinstance(event, NodeJoined):
            watch = self._watch(event.node, at)
            watch.joined_at = max(watch.joined_at, at)
        elif isinstance(event, NodeHeartbeat):
            self._watch(event.node, at).heard(
                Heartbeat(at=at, seq=event.seq, replica_ids=frozenset(event.replica_ids))
            )
        elif isinstance(event, NodeLost):
            watch = self._watch(event.node, at)
            if watch.lost_at is None:
                watch.lost_at = at
                on_node = [p for p in self.placed.values() if p.node == event.node]
                for replica in on_node:
                    self._end(replica.replica_id, at + self.stop_grace_s)
                watch.moved = on_node
        elif isinstance(event, NodeReturned):
            watch = self._watch(event.node, at)
            watch.lost_at = None
            watch.moved = []
            for replica_id in event.moved_replicas:
                self._end(replica_id, at + self.stop_grace_s)
        elif isinstance(event, DriftRepaired):
            self._end(event.replica_id, at + self.stop_grace_s)

    def _revision(self, function: str, revision: int, at: float) -> RevisionHealth:
        """A revision's record, made on first mention: replica events travel on another
        topic than deployments, and a replaying healer may read them first."""
        health = self.health.get(function)
        if health is None:
            health = self.health[function] = FunctionHealth(current=0)
        return health.revisions.setdefault(revision, RevisionHealth(created_at=at))

    def forget_old_ends(self, before: float) -> None:
        """Ended replicas whose quiet time is long past cannot cause drift any more."""
        for replica_id in [r for r, until in self.ended.items() if until < before]:
            del self.ended[replica_id]
