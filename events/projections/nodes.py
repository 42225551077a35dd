"""Nodes and their condition, from the nodes topic and the heartbeats.

A node's condition (lost, draining, cordoned, ready) comes only from the decisions on the
nodes topic, which Kafka keeps in order per node; heartbeats, on another topic, only
report what the node runs and when this process heard it (`heard_at`, this process's
clock: never compared with a time written on another host).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events.types import (
    NodeCapacity,
    NodeCordoned,
    NodeDrained,
    NodeDrainRequested,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeReturned,
    NodeRuntimeChanged,
    NodeUncordoned,
    Payload,
)

RECENT_BEATS = 2


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat as heard: its sequence, the replicas it listed, when it came."""

    seq: int
    replica_ids: frozenset[str]
    heard_at: float


@dataclass(slots=True)
class NodeView:
    node: str
    address: str = ""
    runtime: str = ""
    capacity: NodeCapacity | None = None
    lost: bool = False
    generation: int = 0
    """The generation replicas placed on it now belong to: one more than the last lost."""
    lost_through: int = -1
    """The newest generation a NodeLost ended (-1: never lost)."""
    lost_heard_at: float | None = None
    cordoned: bool = False
    draining: bool = False
    runtime_ok: bool = True
    """Whether its agent can reach its container engine (as the agent last said)."""
    joined_heard_at: float | None = None
    joined: bool = False
    last_heartbeat_at: datetime | None = None
    """The time written in the newest heartbeat (for display)."""
    used_cpus: float = 0.0
    used_memory_mb: float = 0.0
    cpu_cores_used: float = 0.0
    memory_mb_used: float = 0.0
    replicas: int = 0
    busy: frozenset[str] = frozenset()
    """Its replicas that were in use at the newest heartbeat."""
    recent: list[Beat] = field(default_factory=list)
    """The newest heartbeats, oldest first."""

    @property
    def condition(self) -> str:
        """lost, runtime-down, draining, cordoned or ready."""
        if self.lost:
            return "lost"
        if not self.runtime_ok:
            return "runtime-down"
        if self.draining:
            return "draining"
        return "cordoned" if self.cordoned else "ready"

    @property
    def heard_at(self) -> float | None:
        """When this process last heard of the node (a heartbeat or its join)."""
        beat = self.recent[-1].heard_at if self.recent else None
        if beat is None or (self.joined_heard_at is not None and self.joined_heard_at > beat):
            return self.joined_heard_at
        return beat


@dataclass
class NodesProjection:
    nodes: dict[str, NodeView] = field(default_factory=dict)
    joined: set[str] = field(default_factory=set)
    """The nodes that joined (not those only heard of, from a heartbeat or a loss): what a
    new leader claims (`services.common.claims`), kept as they join, not per round."""

    def _view(self, node: str) -> NodeView:
        found = self.nodes.get(node)
        if found is None:
            found = self.nodes[node] = NodeView(node=node)
        return found

    def generation(self, node: str) -> int:
        """The generation a replica placed on `node` now belongs to."""
        found = self.nodes.get(node)
        return found.generation if found is not None else 0

    def lost_through(self, node: str) -> int:
        found = self.nodes.get(node)
        return found.lost_through if found is not None else -1

    def shift(self, offset: float) -> None:
        """Move every time this projection heard something by `offset` seconds."""
        for view in self.nodes.values():
            view.lost_heard_at = _moved(view.lost_heard_at, offset)
            view.joined_heard_at = _moved(view.joined_heard_at, offset)
            view.recent = [
                Beat(seq=b.seq, replica_ids=b.replica_ids, heard_at=b.heard_at + offset)
                for b in view.recent
            ]

    def apply(self, event: Payload, *, at: datetime, now: float) -> None:
        """Fold one node event (`at`: its written time; `now`: when it was heard)."""
        if isinstance(event, NodeHeartbeat):
            self._heartbeat(self._view(event.node), event, at, now)
            return
        view = self._view(event.node)  # type: ignore[attr-defined]
        if isinstance(event, NodeJoined):
            view.address, view.runtime = event.address, event.runtime
            view.capacity, view.joined_heard_at = event.capacity, now
            view.joined = True
            self.joined.add(event.node)
        elif isinstance(event, NodeLost):
            view.lost, view.lost_heard_at = True, now
            view.lost_through = max(view.lost_through, event.generation)
            view.generation = max(view.generation, event.generation + 1)
        elif isinstance(event, NodeReturned):
            view.lost = False
        elif isinstance(event, NodeRuntimeChanged):
            view.runtime_ok = event.available
        else:
            _maintenance(view, event)

    @staticmethod
    def _heartbeat(view: NodeView, beat: NodeHeartbeat, at: datetime, now: float) -> None:
        # Capacity comes from the node's joins (one topic); a heartbeat says it only for a
        # node whose join was never read, so the result does not depend on topic order.
        if not view.joined:
            view.capacity = beat.capacity
        view.last_heartbeat_at = at
        view.used_cpus, view.used_memory_mb = beat.used_cpus, beat.used_memory_mb
        view.cpu_cores_used, view.memory_mb_used = beat.cpu_cores_used, beat.memory_mb_used
        view.replicas, view.busy = beat.replicas, frozenset(beat.busy_ids)
        heard = Beat(seq=beat.seq, replica_ids=frozenset(beat.replica_ids), heard_at=now)
        view.recent = [*view.recent[1 - RECENT_BEATS :], heard]


def _moved(at: float | None, offset: float) -> float | None:
    return None if at is None else at + offset


def _maintenance(view: NodeView, event: Payload) -> None:
    if isinstance(event, NodeCordoned):
        view.cordoned = True
    elif isinstance(event, NodeUncordoned):
        view.cordoned = view.draining = False
    elif isinstance(event, NodeDrainRequested):
        view.cordoned = view.draining = True
    elif isinstance(event, NodeDrained):
        view.draining = False
