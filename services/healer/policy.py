"""What is broken and what repairs it (pure): lost nodes, nodes that come back, revisions
to roll back, and drift between the log and what the node-agents report.

Every time here is on the healer's own clock: when it heard a heartbeat, a command or a
report, never a time written on another host."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from events.lifecycle import ReplicaState
from events.projections.failures import FailuresProjection
from events.projections.functions import FunctionView
from events.projections.nodes import Beat, NodeView
from events.projections.replicas import ReplicaView


@dataclass(frozen=True)
class NodeLoss:
    node: str
    silent_s: float
    evidence: str


@dataclass(frozen=True)
class NodeReturn:
    node: str
    lost_for_s: float


def lost_nodes(
    nodes: Iterable[NodeView], now: float, timeout_s: float, watching_since: float = 0.0
) -> list[NodeLoss]:
    """Nodes silent for longer than the timeout that are not already lost.

    Silence counts from `watching_since` at the earliest (when this healer started): a
    healer that was down itself does not blame nodes for what it could not hear, as
    Kubernetes' node controller gives every node a fresh grace period when it starts."""
    found = []
    for node in nodes:
        silent = now - max(node.heard_at or watching_since, watching_since)
        if node.lost or silent <= timeout_s:
            continue
        seq = f", last seq {node.recent[-1].seq}" if node.recent else ", never heartbeated"
        found.append(
            NodeLoss(
                node=node.node,
                silent_s=silent,
                evidence=f"no heartbeat for {silent:.1f} s (timeout {timeout_s:g} s{seq})",
            )
        )
    return found


@dataclass(frozen=True)
class Disruption:
    silent: list[str]
    total: int
    reason: str


MOST_SILENT = 0.55
"""More than this share of the watched nodes silent at once (and at least two) is a
disruption, as Kubernetes' node controller counts a zone unhealthy past 55%."""


def disruption(
    nodes: Iterable[NodeView], now: float, timeout_s: float, watching_since: float = 0.0
) -> Disruption | None:
    """Every watched node, or most of them, silent at once, or none heard for half a
    timeout: more likely this healer (or the bus between them) went deaf than they all
    died. Then no node is declared lost."""
    watched = [n for n in nodes if not n.lost]
    silence = {n.node: now - max(n.heard_at or watching_since, watching_since) for n in watched}
    silent = [node for node, quiet in silence.items() if quiet > timeout_s]
    if not silent:
        return None
    if min(silence.values()) > timeout_s / 2:
        # When the healer goes deaf, nodes time out one after another: with none heard for
        # half a timeout, the first to time out is no evidence against it.
        reason = f"no node heard for {min(silence.values()):.1f} s"
    elif len(silent) >= 2 and len(silent) / len(watched) > MOST_SILENT:
        reason = f"{len(silent)} of {len(watched)} watched nodes went silent at once"
    else:
        return None
    return Disruption(
        silent=sorted(silent), total=len(watched), reason=f"{reason}: the healer may be deaf"
    )


def returned_nodes(nodes: Iterable[NodeView], watching_since: float = 0.0) -> list[NodeReturn]:
    """Lost nodes heard again since they were declared lost (and since this healer began
    to listen: heartbeats replayed from before its start prove nothing)."""
    back = []
    for node in nodes:
        if not node.lost or not node.recent or node.lost_heard_at is None:
            continue
        heard = node.recent[-1].heard_at
        if heard > max(node.lost_heard_at, watching_since):
            back.append(NodeReturn(node=node.node, lost_for_s=heard - node.lost_heard_at))
    return back


@dataclass(frozen=True)
class Rollback:
    function: str
    from_revision: int
    to_revision: int
    reason: str


def rollback_for(
    view: FunctionView,
    failures: FailuresProjection,
    now: float,
    *,
    progress_deadline_s: float,
    failure_threshold: int,
) -> Rollback | None:
    """Roll a failing new revision back to the newest older one that was healthy.

    A revision fails when it crashes `failure_threshold` times within its progress deadline,
    or when the deadline passes without one ready replica. With no healthy revision to go
    back to there is no rollback (the crash-loop back-off goes on)."""
    current = view.revision
    if view.deleted or current in view.rolled_back:
        return None
    record = failures.of(view.name, current)
    age = now - view.revision_heard_at.get(current, now)
    if record.failures >= failure_threshold and age <= progress_deadline_s:
        reason = (
            f"revision {current} failed {record.failures} times within "
            f"{age:.1f} s of its rollout (last: {record.last_failure})"
        )
    elif not record.ever_ready and age > progress_deadline_s:
        last = f" (last failure: {record.last_failure})" if record.last_failure else ""
        reason = (
            f"revision {current} had no ready replica within its progress deadline "
            f"of {progress_deadline_s:g} s{last}"
        )
    else:
        return None
    healthy = [
        revision
        for revision in view.revisions
        if revision < current
        and revision not in view.rolled_back
        and failures.of(view.name, revision).ever_ready
    ]
    if not healthy:
        return None
    rollout = view.rollout
    stable = rollout.stable if rollout is not None and rollout.canary == current else None
    target = stable if stable in healthy else max(healthy)
    return Rollback(
        function=view.name,
        from_revision=current,
        to_revision=target,
        reason=f"{reason}; back to revision {target}, the last that was healthy",
    )


@dataclass(frozen=True)
class Repair:
    kind: Literal["unknown", "missing"]
    """unknown: it runs and nothing wants it (stop it); missing: wanted and gone (replace it)."""
    node: str
    replica_id: str
    function: str
    revision: int
    reason: str


@dataclass(frozen=True)
class Graces:
    """How long each kind of news may take to reach every topic before it counts as drift."""

    report_s: float
    """After a replica was reported, or ended by its node's report."""
    start_s: float
    """After a start was commanded and not yet reported."""
    stop_s: float
    """After a stop was commanded, or the replica was ended by a node loss or a repair."""


def drift(
    node: NodeView,
    placed: Iterable[ReplicaView],
    known: Mapping[str, ReplicaView],
    unknown_stops: Mapping[str, float],
    graces: Graces,
) -> list[Repair]:
    """Differences between what the log says runs on a node and what its agent reported in
    its two newest heartbeats, ignoring anything younger than the grace periods (events and
    heartbeats travel on different topics and can overtake each other).

    `placed` are the node's live replicas; `known` every replica heard of (ended ones
    too); `unknown_stops` the stops commanded for replicas never heard of, with when."""
    if node.lost or len(node.recent) < 2:
        return []
    older, newer = node.recent
    found = [
        _unknown(node.node, replica_id, known.get(replica_id), unknown_stops, graces, older)
        for replica_id in sorted(older.replica_ids & newer.replica_ids)
    ]
    return [r for r in found if r is not None] + _missing(node, placed, graces)


def _quiet_until(
    replica: ReplicaView | None, stopped_at: float | None, graces: Graces
) -> float | None:
    """Until when a node may still report a replica that should not run there."""
    times = []
    if stopped_at is not None:
        times.append(stopped_at + graces.stop_s)
    if replica is not None and replica.leaving_heard_at is not None:
        times.append(replica.leaving_heard_at + graces.stop_s)
    if replica is not None and replica.ended_heard_at is not None:
        inferred = replica.state in (ReplicaState.LOST, ReplicaState.MISSING)
        grace = graces.stop_s if inferred else graces.report_s
        times.append(replica.ended_heard_at + grace)
    return max(times) if times else None


def _unknown(
    node: str,
    replica_id: str,
    replica: ReplicaView | None,
    unknown_stops: Mapping[str, float],
    graces: Graces,
    older: Beat,
) -> Repair | None:
    if replica is not None and replica.live:
        return None
    quiet_until = _quiet_until(replica, unknown_stops.get(replica_id), graces)
    if quiet_until is not None and older.heard_at < quiet_until:
        return None
    said = "has ended" if replica is not None else "was never started there"
    return Repair(
        kind="unknown",
        node=node,
        replica_id=replica_id,
        function="",
        revision=0,
        reason=f"node {node} runs {replica_id}, which the log says {said}",
    )


def _missing(node: NodeView, placed: Iterable[ReplicaView], graces: Graces) -> list[Repair]:
    """Replicas the log places on a node that its two newest heartbeats leave out."""
    older, newer = node.recent
    repairs = []
    for replica in placed:
        rid = replica.replica_id
        if replica.leaving or rid in older.replica_ids or rid in newer.replica_ids:
            continue
        if replica.reported_heard_at is not None:
            since, what = replica.reported_heard_at + graces.report_s, "its agent reported it"
        else:
            since = (replica.commanded_heard_at or 0.0) + graces.start_s
            what = "it was commanded"
        if older.heard_at < since:
            continue
        repairs.append(
            Repair(
                kind="missing",
                node=node.node,
                replica_id=rid,
                function=replica.function,
                revision=replica.revision,
                reason=(
                    f"node {node.node} stopped reporting {rid} "
                    f"(absent from heartbeats {older.seq} and {newer.seq} after {what})"
                ),
            )
        )
    return repairs
