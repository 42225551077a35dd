"""Replicas with one lifecycle, from the commands, the replica reports and the nodes.

What is said of a replica comes from three topics (its start and stop commands, its
node's reports, a node's loss or a drift repair), which a reader may read in any
interleaving. Each fact only moves the replica forward in its lifecycle
(`events.lifecycle`), and a NodeLost names the generation of the node it ends, so the
result is the same whatever was read first. Ended replicas stay as tombstones, so that a
late fact about one changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from events.lifecycle import ENDED, LIVE, ReplicaState, merged
from events.projections.nodes import NodesProjection
from events.types import (
    DrainReplica,
    DriftRepaired,
    ReplicaDraining,
    ReplicaEvent,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    StartReplica,
    StopReplica,
)

REPORTED: dict[type[ReplicaEvent], ReplicaState] = {
    ReplicaStarting: ReplicaState.STARTING,
    ReplicaReady: ReplicaState.READY,
    ReplicaDraining: ReplicaState.DRAINING,
    ReplicaStopped: ReplicaState.STOPPED,
    ReplicaFailed: ReplicaState.FAILED,
}


HEARD_FIELDS = ("commanded_heard_at", "reported_heard_at", "ended_heard_at", "leaving_heard_at")


@dataclass(slots=True)
class ReplicaView:
    replica_id: str
    function: str
    revision: int
    node: str
    generation: int = 0
    state: ReplicaState = ReplicaState.COMMANDED
    leaving: bool = False
    """A drain or stop was commanded."""
    leaving_heard_at: float | None = None
    """When this process last heard a drain or stop commanded for it."""
    commanded: bool = False
    cpu: float = 0.0
    memory_mb: float = 0.0
    endpoint: str = ""
    concurrency_limit: int = 0
    reason: str = ""
    """Why it ended."""
    commanded_heard_at: float | None = None
    reported_heard_at: float | None = None
    """When its node first reported it (starting or ready)."""
    ended_heard_at: float | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE


@dataclass
class ReplicasProjection:
    nodes: NodesProjection
    replicas: dict[str, ReplicaView] = field(default_factory=dict)
    """Every replica ever heard of; ended ones are kept as tombstones."""
    live_by_function: dict[str, dict[str, ReplicaView]] = field(default_factory=dict)
    live_by_node: dict[str, dict[str, ReplicaView]] = field(default_factory=dict)
    lost_by_node: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    """(node, generation) -> the replicas a NodeLost of that generation ended."""
    leave_unknown: dict[str, float] = field(default_factory=dict)
    """Stops commanded for replicas not heard of (yet), and when they were heard."""

    def shift(self, offset: float) -> None:
        """Move every time this projection heard something by `offset` seconds."""
        for view in self.replicas.values():
            for name in HEARD_FIELDS:
                at = getattr(view, name)
                if at is not None:
                    setattr(view, name, at + offset)
        self.leave_unknown = {rid: at + offset for rid, at in self.leave_unknown.items()}

    def prune(self, before: float) -> int:
        """Forget replicas that ended, and stops of unknown ones, heard of before `before`:
        nothing late about them is expected any more. Returns how many were forgotten."""
        old = [
            view
            for view in self.replicas.values()
            if view.ended_heard_at is not None and view.ended_heard_at < before
        ]
        for view in old:
            del self.replicas[view.replica_id]
            lost = self.lost_by_node.get((view.node, view.generation))
            if lost is not None:
                lost.discard(view.replica_id)
                if not lost:
                    del self.lost_by_node[(view.node, view.generation)]
        self.leave_unknown = {r: at for r, at in self.leave_unknown.items() if at >= before}
        return len(old)

    def get(self, replica_id: str) -> ReplicaView | None:
        return self.replicas.get(replica_id)

    def live_of(self, function: str) -> list[ReplicaView]:
        return list(self.live_by_function.get(function, {}).values())

    def live_on(self, node: str) -> list[ReplicaView]:
        return list(self.live_by_node.get(node, {}).values())

    def live(self) -> Iterator[ReplicaView]:
        for replicas in self.live_by_function.values():
            yield from replicas.values()

    def moved_from(self, node: str, generation: int) -> list[ReplicaView]:
        """The replicas a node's loss of `generation` ended (they run elsewhere now)."""
        ids = self.lost_by_node.get((node, generation), set())
        found = (self.replicas[rid] for rid in sorted(ids))
        return [view for view in found if view.state is ReplicaState.LOST]

    def command(self, event: StartReplica | DrainReplica | StopReplica, now: float) -> str:
        """Fold a node command; returns the replica's function."""
        if isinstance(event, StartReplica):
            view = self._record(
                event.replica_id, event.function, event.revision, event.node, event.node_generation
            )
            if not view.commanded:
                view.commanded, view.commanded_heard_at = True, now
                view.cpu = event.spec.requested_cpu
                view.memory_mb = float(event.spec.requested_memory_mb)
            self._end_if_node_lost(view, now)
            return view.function
        known = self.replicas.get(event.replica_id)
        if known is None:
            self.leave_unknown[event.replica_id] = now
            return event.function
        known.leaving, known.leaving_heard_at = True, now
        return known.function

    def report(self, event: ReplicaEvent, now: float) -> ReplicaView | None:
        """Fold a node-agent's report about a replica; None (refused, nothing changes) when
        the replica was commanded onto another node or for another function: a node
        reports only on what it was told to run, never on another node's replicas."""
        known = self.replicas.get(event.replica_id)
        if known is not None and known.commanded:
            if (known.node, known.function) != (event.node, event.function):
                return None
        view = self._record(
            event.replica_id, event.function, event.revision, event.node, event.node_generation
        )
        if view.reported_heard_at is None and not isinstance(event, ReplicaStopped | ReplicaFailed):
            view.reported_heard_at = now
        if isinstance(event, ReplicaReady):
            view.endpoint, view.concurrency_limit = event.endpoint, event.concurrency_limit
        reason = event.summary() if isinstance(event, ReplicaFailed) else ""
        if isinstance(event, ReplicaStopped):
            reason = event.reason
        self._advance(view, REPORTED[type(event)], now, reason[:200])
        self._end_if_node_lost(view, now)
        return view

    def drift(self, event: DriftRepaired, now: float) -> str:
        """A drift repair: a `missing` replica ends; an `unknown` one was told to stop."""
        view = self.replicas.get(event.replica_id)
        if event.kind == "unknown":
            if view is None:
                self.leave_unknown[event.replica_id] = now
            else:
                view.leaving, view.leaving_heard_at = True, now
            return event.function
        if view is None:
            view = self._record(event.replica_id, event.function, event.revision, event.node, 0)
        self._advance(view, ReplicaState.MISSING, now, event.reason[:200])
        return view.function

    def node_lost(self, node: str, generation: int, now: float) -> list[ReplicaView]:
        """End every live replica of `node` placed in `generation` or earlier."""
        ended = [r for r in self.live_on(node) if r.generation <= generation]
        for view in ended:
            self._advance(view, ReplicaState.LOST, now, f"node {node} lost")
        return ended

    def _record(
        self, replica_id: str, function: str, revision: int, node: str, generation: int
    ) -> ReplicaView:
        view = self.replicas.get(replica_id)
        if view is None:
            left_at = self.leave_unknown.pop(replica_id, None)
            view = self.replicas[replica_id] = ReplicaView(
                replica_id=replica_id,
                function=function,
                revision=revision,
                node=node,
                generation=generation,
                leaving=left_at is not None,
                leaving_heard_at=left_at,
            )
            self._index(view)
            return view
        if not view.function and node == view.node:
            view.function = function  # first heard of from a drift repair (ended, so not
            # indexed), which may not name it: the node's command or report does
        if not view.revision:
            view.revision = revision
        return view

    def _end_if_node_lost(self, view: ReplicaView, now: float) -> None:
        if view.live and view.generation <= self.nodes.lost_through(view.node):
            self._advance(view, ReplicaState.LOST, now, f"node {view.node} lost")

    def _advance(self, view: ReplicaView, state: ReplicaState, now: float, reason: str) -> None:
        new = merged(view.state, state)
        if new is view.state:
            return
        was_live = view.live
        view.state = new
        if new in ENDED:
            view.reason = reason
            if view.ended_heard_at is None:
                view.ended_heard_at = now
            if new is ReplicaState.LOST:
                self.lost_by_node.setdefault((view.node, view.generation), set()).add(
                    view.replica_id
                )
            if was_live:
                self._unindex(view)

    def _index(self, view: ReplicaView) -> None:
        self.live_by_function.setdefault(view.function, {})[view.replica_id] = view
        self.live_by_node.setdefault(view.node, {})[view.replica_id] = view

    def _unindex(self, view: ReplicaView) -> None:
        for index, key in ((self.live_by_function, view.function), (self.live_by_node, view.node)):
            bucket = index.get(key)
            if bucket is not None:
                bucket.pop(view.replica_id, None)
                if not bucket:
                    del index[key]
