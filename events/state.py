"""The one fold of Shoal's history into cluster state: functions and their revisions,
replicas and where they run, nodes and their condition, the last scale decision.

`apply` is pure over (state, event) and idempotent: applying an event twice, or an older
event about a thing after a newer one of the same key, leaves the same state. Services
rebuild from it on start; the CLI uses it for `replay`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from events.envelope import Envelope
from events.types import (
    DriftRepaired,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    NodeCapacity,
    NodeCordoned,
    NodeDrained,
    NodeDrainRequested,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeUncordoned,
    PlacementPending,
    ReplicaDraining,
    ReplicaEvent,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    ScaleDecision,
    ScaleRequested,
)

LIVE_REPLICA_STATES = ("starting", "ready", "draining")


@dataclass
class FunctionView:
    name: str
    spec: FunctionSpec
    revision: int
    revisions: dict[int, FunctionSpec]
    deleted: bool = False
    desired: int | None = None
    last_decision: ScaleDecision | None = None
    last_decision_at: datetime | None = None
    pinned_replicas: int | None = None
    rollback_reason: str = ""
    failures: int = 0
    """Replicas failed since one last became ready (the crash loop the back-off follows)."""
    last_failure: str = ""
    pending: int = 0
    pending_reason: str = ""
    """Why the scheduler could not start `pending` replicas (capacity, crash-loop back-off)."""


@dataclass
class ReplicaView:
    replica_id: str
    function: str
    revision: int
    node: str
    state: str
    endpoint: str = ""
    concurrency_limit: int = 0
    reason: str = ""


@dataclass
class NodeView:
    node: str
    address: str = ""
    runtime: str = ""
    capacity: NodeCapacity | None = None
    last_heartbeat_at: datetime | None = None
    used_cpus: float = 0.0
    used_memory_mb: float = 0.0
    replicas: int = 0
    lost: bool = False
    lost_at: datetime | None = None
    """When the healer declared it lost: only a newer heartbeat or join brings it back."""
    cordoned: bool = False
    draining: bool = False

    @property
    def condition(self) -> str:
        """lost, draining, cordoned or ready."""
        if self.lost:
            return "lost"
        if self.draining:
            return "draining"
        return "cordoned" if self.cordoned else "ready"


@dataclass
class ClusterState:
    functions: dict[str, FunctionView] = field(default_factory=dict)
    replicas: dict[str, ReplicaView] = field(default_factory=dict)
    nodes: dict[str, NodeView] = field(default_factory=dict)
    decisions: dict[str, tuple[ScaleDecision, datetime]] = field(default_factory=dict)
    """The latest scale decision of each function. Decisions and deployments travel on
    different topics, so a reader can see a decision before the function it is about."""
    ended_replicas: dict[str, str] = field(default_factory=dict)
    """Replica id -> how it ended (stopped/failed): a late event about it changes nothing."""
    as_of: datetime | None = None

    def live_replicas(self, function: str) -> list[ReplicaView]:
        return [
            r
            for r in self.replicas.values()
            if r.function == function and r.state in LIVE_REPLICA_STATES
        ]


def apply(state: ClusterState, envelope: Envelope) -> ClusterState:
    """Fold one event into the state (in place) and return it."""
    event = envelope.data
    if state.as_of is None or envelope.time > state.as_of:
        state.as_of = envelope.time
    if isinstance(event, FunctionDeployed | FunctionUpdated):
        fresh = isinstance(event, FunctionDeployed)
        _function_spec(state, event.function, event.revision, event.spec, fresh=fresh)
        # A new spec or new scaling settings hand the count back to the autoscaler.
        state.functions[event.function].pinned_replicas = None
    elif isinstance(event, FunctionDeleted):
        state.decisions.pop(event.function, None)
        if event.function in state.functions:
            state.functions[event.function].deleted = True
    elif isinstance(event, FunctionRolledBack):
        view = state.functions.get(event.function)
        if view is not None and event.to_revision in view.revisions:
            view.revision = event.to_revision
            view.spec = view.revisions[event.to_revision]
            view.rollback_reason = event.reason
    elif isinstance(event, ScaleRequested):
        if event.function in state.functions:
            state.functions[event.function].pinned_replicas = event.replicas
    elif isinstance(event, ScaleDecision):
        latest = state.decisions.get(event.function)
        if latest is None or envelope.time >= latest[1]:
            state.decisions[event.function] = (event, envelope.time)
            view = state.functions.get(event.function)
            if view is not None:
                _take_decision(view, event, envelope.time)
    elif isinstance(event, PlacementPending):
        view = state.functions.get(event.function)
        if view is not None:
            view.pending, view.pending_reason = event.pending, event.reason
    elif isinstance(event, ReplicaEvent):
        _replica(state, event, envelope.time)
    elif isinstance(event, DriftRepaired):
        if event.kind == "missing" and event.replica_id not in state.ended_replicas:
            state.replicas.pop(event.replica_id, None)
            state.ended_replicas[event.replica_id] = "missing"
    else:
        _node(state, envelope)
    return state


def _take_decision(view: FunctionView, decision: ScaleDecision, at: datetime) -> None:
    view.desired = decision.desired
    view.last_decision = decision
    view.last_decision_at = at


def _function_spec(
    state: ClusterState, name: str, revision: int, spec: FunctionSpec, *, fresh: bool
) -> None:
    view = state.functions.get(name)
    if view is None or (view.deleted and fresh):
        view = state.functions[name] = FunctionView(
            name=name, spec=spec, revision=revision, revisions={revision: spec}
        )
        if name in state.decisions:
            _take_decision(view, *state.decisions[name])
        return
    view.revisions[revision] = spec
    if revision >= view.revision:
        view.revision = revision
        view.spec = spec


def lost_before(state: ClusterState, node: str, at: datetime) -> bool:
    """Whether `node` was declared lost after `at` and has not come back: news from before
    the loss (read late, from another topic) must not bring its replicas back."""
    view = state.nodes.get(node)
    return bool(view and view.lost and view.lost_at and at < view.lost_at)


def _replica(state: ClusterState, event: ReplicaEvent, at: datetime) -> None:
    if event.replica_id in state.ended_replicas:
        return
    if lost_before(state, event.node, at):
        state.replicas.pop(event.replica_id, None)
        state.ended_replicas[event.replica_id] = "lost"
        return
    current = state.replicas.get(event.replica_id)
    function = state.functions.get(event.function)
    if function is not None:
        if isinstance(event, ReplicaFailed):
            function.failures += 1
            function.last_failure = event.summary()[:200]
        elif isinstance(event, ReplicaStarting | ReplicaReady):
            function.pending, function.pending_reason = 0, ""
            if isinstance(event, ReplicaReady):
                function.failures = 0
    if isinstance(event, ReplicaStopped | ReplicaFailed):
        state.replicas.pop(event.replica_id, None)
        state.ended_replicas[event.replica_id] = (
            "failed" if isinstance(event, ReplicaFailed) else "stopped"
        )
        return
    if isinstance(event, ReplicaStarting):
        if current is None:
            state.replicas[event.replica_id] = ReplicaView(
                replica_id=event.replica_id,
                function=event.function,
                revision=event.revision,
                node=event.node,
                state="starting",
            )
    elif isinstance(event, ReplicaReady):
        if current is None or current.state != "draining":
            state.replicas[event.replica_id] = ReplicaView(
                replica_id=event.replica_id,
                function=event.function,
                revision=event.revision,
                node=event.node,
                state="ready",
                endpoint=event.endpoint,
                concurrency_limit=event.concurrency_limit,
            )
    elif isinstance(event, ReplicaDraining):
        if current is None:
            current = state.replicas[event.replica_id] = ReplicaView(
                replica_id=event.replica_id,
                function=event.function,
                revision=event.revision,
                node=event.node,
                state="draining",
            )
        current.state = "draining"


def _node(state: ClusterState, envelope: Envelope) -> None:
    event = envelope.data
    if not isinstance(
        event,
        NodeJoined
        | NodeHeartbeat
        | NodeLost
        | NodeCordoned
        | NodeUncordoned
        | NodeDrainRequested
        | NodeDrained,
    ):
        return
    view = state.nodes.get(event.node)
    if view is None:
        view = state.nodes[event.node] = NodeView(node=event.node)
    newer_than_loss = view.lost_at is None or envelope.time > view.lost_at
    if isinstance(event, NodeJoined):
        view.address, view.runtime, view.capacity = event.address, event.runtime, event.capacity
        view.lost = view.lost and not newer_than_loss
    elif isinstance(event, NodeHeartbeat):
        if view.last_heartbeat_at is None or envelope.time >= view.last_heartbeat_at:
            view.last_heartbeat_at = envelope.time
            view.capacity = event.capacity
            view.used_cpus, view.used_memory_mb = event.used_cpus, event.used_memory_mb
            view.replicas = event.replicas
            view.lost = view.lost and not newer_than_loss
    elif isinstance(event, NodeLost):
        if view.last_heartbeat_at is None or envelope.time >= view.last_heartbeat_at:
            view.lost = True
            view.lost_at = envelope.time
            for replica_id in [
                r.replica_id for r in state.replicas.values() if r.node == event.node
            ]:
                state.replicas.pop(replica_id)
                state.ended_replicas[replica_id] = "lost"
    elif isinstance(event, NodeCordoned):
        view.cordoned = True
    elif isinstance(event, NodeUncordoned):
        view.cordoned = view.draining = False
    elif isinstance(event, NodeDrainRequested):
        view.cordoned = view.draining = True
    elif isinstance(event, NodeDrained):
        view.draining = False


def snapshot(state: ClusterState) -> dict[str, dict[str, dict[str, object]]]:
    """The state as plain data (for printing, comparing and JSON)."""
    functions: dict[str, dict[str, object]] = {}
    for name, view in sorted(state.functions.items()):
        if view.deleted:
            continue
        live = state.live_replicas(name)
        functions[name] = {
            "revision": view.revision,
            "image": view.spec.image,
            "desired": view.desired,
            "ready": sum(1 for r in live if r.state == "ready"),
            "replicas": len(live),
            "pinned": view.pinned_replicas,
            "last_decision": view.last_decision.reason if view.last_decision else None,
            "rollback_reason": view.rollback_reason or None,
        }
    replicas: dict[str, dict[str, object]] = {
        rid: {"function": r.function, "revision": r.revision, "node": r.node, "state": r.state}
        for rid, r in sorted(state.replicas.items())
    }
    per_node = Counter(r.node for r in state.replicas.values())
    nodes: dict[str, dict[str, object]] = {
        name: {
            "condition": n.condition,
            "cpus": n.capacity.cpus if n.capacity else None,
            "memory_mb": n.capacity.memory_mb if n.capacity else None,
            "replicas": per_node[name],
        }
        for name, n in sorted(state.nodes.items())
    }
    return {"functions": functions, "replicas": replicas, "nodes": nodes}


def state_at(envelopes: Iterable[Envelope], at: datetime | None) -> ClusterState:
    """The state as it was at `at` (everything when None): events up to it, in time order."""
    chosen = sorted((e for e in envelopes if at is None or e.time <= at), key=lambda e: e.time)
    state = ClusterState()
    for envelope in chosen:
        apply(state, envelope)
    return state


def diff(
    before: dict[str, dict[str, dict[str, object]]], after: dict[str, dict[str, dict[str, object]]]
) -> list[str]:
    """What changed between two snapshots, a line per thing."""
    lines = []
    for section in ("functions", "replicas", "nodes"):
        old, new = before.get(section, {}), after.get(section, {})
        kind = section[:-1]
        for key in sorted(old.keys() | new.keys()):
            if key not in old:
                lines.append(f"+ {kind} {key}: {_fields(new[key])}")
            elif key not in new:
                lines.append(f"- {kind} {key}: {_fields(old[key])}")
            else:
                changed = [
                    f"{f} {old[key].get(f)!r} -> {new[key].get(f)!r}"
                    for f in sorted(old[key].keys() | new[key].keys())
                    if old[key].get(f) != new[key].get(f)
                ]
                if changed:
                    lines.append(f"~ {kind} {key}: {', '.join(changed)}")
    return lines


def _fields(values: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)
