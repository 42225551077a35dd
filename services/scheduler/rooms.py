"""The scheduler's own accounting on top of the shared projections: the room each node has
left, held per live replica, and whether a node takes new replicas or must be emptied."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.projections.nodes import NodeView
from events.projections.replicas import ReplicaView
from services.scheduler.placement import NodeRoom


@dataclass
class Rooms:
    rooms: dict[str, NodeRoom] = field(default_factory=dict)

    def room(self, node: str) -> NodeRoom:
        found = self.rooms.get(node)
        if found is None:
            found = self.rooms[node] = NodeRoom(
                node=node, cpus=0, memory_mb=0, max_replicas=0, schedulable=False, evacuating=True
            )
        return found

    def replica(self, view: ReplicaView) -> None:
        """A live replica holds room on its node until it ends."""
        room = self.room(view.node)
        if view.live:
            room.reserve(view.replica_id, view.function, view.cpu, view.memory_mb)
        else:
            room.release(view.replica_id)

    def node(self, view: NodeView, *, now: float, stale_s: float) -> bool:
        """Bring a node's capacity and condition up to date; True when whether it takes or
        keeps replicas changed. Lost and draining nodes are emptied (the healer and the user
        decide those); a node not heard of for `stale_s` (on this process's clock), a
        cordoned one, or one whose engine is away, keeps its replicas but takes no new one:
        silence alone moves nothing, as the healer may be the one who cannot hear."""
        room = self.room(view.node)
        if view.capacity is not None:
            room.cpus, room.memory_mb = view.capacity.cpus, view.capacity.memory_mb
            room.max_replicas = view.capacity.max_replicas
        room.busy = view.busy
        heard = view.heard_at
        fresh = heard is not None and now - heard <= stale_s
        before = (room.schedulable, room.evacuating)
        room.evacuating = not (view.capacity and not view.lost and not view.draining)
        room.schedulable = not room.evacuating and fresh and not view.cordoned and view.runtime_ok
        return (room.schedulable, room.evacuating) != before
