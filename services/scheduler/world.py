"""The scheduler's memory: the cluster fold, what it commanded where, and node room."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.envelope import Envelope
from events.state import ClusterState, apply, lost_before
from events.types import (
    DrainReplica,
    DriftRepaired,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionUpdated,
    NodeCordoned,
    NodeDrained,
    NodeDrainRequested,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeUncordoned,
    ReplicaDraining,
    ReplicaEvent,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    ScaleDecision,
    StartReplica,
    StopReplica,
)
from services.scheduler.placement import NodeRoom
from services.scheduler.plan import Assigned, Failures


@dataclass
class World:
    cluster: ClusterState = field(default_factory=ClusterState)
    assigned: dict[str, Assigned] = field(default_factory=dict)
    by_function: dict[str, dict[str, Assigned]] = field(default_factory=dict)
    rooms: dict[str, NodeRoom] = field(default_factory=dict)
    heartbeat_at: dict[str, float] = field(default_factory=dict)
    failures: dict[str, Failures] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    drained_reported: set[str] = field(default_factory=set)

    def replicas_of(self, function: str) -> list[Assigned]:
        return list(self.by_function.get(function, {}).values())

    def _room(self, node: str) -> NodeRoom:
        room = self.rooms.get(node)
        if room is None:
            room = self.rooms[node] = NodeRoom(
                node=node,
                cpus=0,
                memory_mb=0,
                max_replicas=0,
                schedulable=False,
                evacuating=True,
            )
        return room

    def refresh_schedulable(self, node: str, now: float, stale_s: float) -> None:
        view = self.cluster.nodes.get(node)
        room = self._room(node)
        fresh = now - self.heartbeat_at.get(node, -1e18) <= stale_s
        was = (room.schedulable, room.evacuating)
        room.evacuating = not (
            view and view.capacity and not view.lost and not view.draining and fresh
        )
        room.schedulable = not room.evacuating and not (view and view.cordoned)
        if (room.schedulable, room.evacuating) != was:
            self.dirty.update(self.cluster.functions)

    def apply(self, envelope: Envelope, *, now: float, stale_s: float) -> None:
        apply(self.cluster, envelope)
        event = envelope.data
        at = envelope.time.timestamp()
        if isinstance(
            event,
            FunctionDeployed
            | FunctionUpdated
            | FunctionDeleted
            | FunctionRolledBack
            | ScaleDecision,
        ):
            if isinstance(event, FunctionUpdated | FunctionRolledBack):
                # A new revision, or a healthy old one, starts without the old crash loop.
                self.failures.pop(event.function, None)
            self.dirty.add(event.function)
        elif isinstance(event, StartReplica):
            if (
                event.replica_id not in self.assigned
                and event.replica_id not in self.cluster.ended_replicas
                and not lost_before(self.cluster, event.node, envelope.time)
            ):
                replica = Assigned(
                    replica_id=event.replica_id,
                    function=event.function,
                    revision=event.revision,
                    node=event.node,
                    cpu=event.spec.cpu,
                    memory_mb=event.spec.memory_mb,
                )
                self.assigned[event.replica_id] = replica
                self.by_function.setdefault(event.function, {})[event.replica_id] = replica
                self._room(event.node).reserve(event.function, event.spec.cpu, event.spec.memory_mb)
        elif isinstance(event, DrainReplica | StopReplica):
            if event.replica_id in self.assigned:
                self.assigned[event.replica_id].leaving = True
        elif isinstance(event, ReplicaEvent):
            self._replica(event, at)
        elif isinstance(event, NodeJoined | NodeHeartbeat):
            room = self._room(event.node)
            room.cpus, room.memory_mb = event.capacity.cpus, event.capacity.memory_mb
            room.max_replicas = event.capacity.max_replicas
            self.heartbeat_at[event.node] = (
                at
                if isinstance(event, NodeHeartbeat)
                else max(at, self.heartbeat_at.get(event.node, at))
            )
            self.refresh_schedulable(event.node, now, stale_s)
        elif isinstance(event, DriftRepaired):
            if event.kind == "missing" and event.replica_id in self.assigned:
                self._forget(self.assigned[event.replica_id])
        elif isinstance(event, NodeLost):
            for replica in [a for a in self.assigned.values() if a.node == event.node]:
                self._forget(replica)
            self.refresh_schedulable(event.node, now, stale_s)
        elif isinstance(event, NodeCordoned | NodeUncordoned | NodeDrainRequested):
            if isinstance(event, NodeUncordoned | NodeDrainRequested):
                self.drained_reported.discard(event.node)
            self.refresh_schedulable(event.node, now, stale_s)
        elif isinstance(event, NodeDrained):
            self.drained_reported.add(event.node)

    def _replica(self, event: ReplicaEvent, at: float) -> None:
        replica = self.assigned.get(event.replica_id)
        if isinstance(event, ReplicaStopped | ReplicaFailed):
            view = self.cluster.functions.get(event.function)
            # Failures of a revision rolled back or replaced do not hold up the current one.
            current = view is None or view.revision == event.revision
            if isinstance(event, ReplicaFailed) and current:
                failures = self.failures.setdefault(event.function, Failures())
                failures.count += 1
                failures.last_at = max(failures.last_at, at)
            if replica is not None:
                self._forget(replica)
            self.dirty.add(event.function)
            return
        if replica is None:
            return
        if isinstance(event, ReplicaStarting) and replica.state == "commanded":
            replica.state = "starting"
        elif isinstance(event, ReplicaReady):
            replica.state = "ready"
            self.failures.pop(event.function, None)
        elif isinstance(event, ReplicaDraining):
            replica.leaving = True
        self.dirty.add(event.function)

    def _forget(self, replica: Assigned) -> None:
        self.assigned.pop(replica.replica_id, None)
        self.by_function.get(replica.function, {}).pop(replica.replica_id, None)
        self._room(replica.node).release(replica.function, replica.cpu, replica.memory_mb)
        self.dirty.add(replica.function)

    def drained_nodes(self) -> list[str]:
        """Nodes asked to drain that have no live replica left and were not reported yet."""
        busy = {a.node for a in self.assigned.values()}
        return [
            n
            for n, view in self.cluster.nodes.items()
            if view.draining and n not in busy and n not in self.drained_reported
        ]
