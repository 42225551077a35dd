"""What is broken and what repairs it (pure): lost nodes, nodes that come back, revisions
to roll back, and drift between the log and what the node-agents report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class Placed:
    """A replica the log says runs on a node: commanded there and not ended."""

    replica_id: str
    function: str
    revision: int
    node: str
    commanded_at: float
    acknowledged_at: float | None = None
    """When the node-agent first reported it (starting or ready)."""
    ready: bool = False
    leaving: bool = False


@dataclass
class Heartbeat:
    at: float
    seq: int
    replica_ids: frozenset[str]


@dataclass
class NodeWatch:
    node: str
    joined_at: float
    recent: list[Heartbeat] = field(default_factory=list)
    """The newest heartbeats, oldest first (at most two are kept)."""
    lost_at: float | None = None
    """When the node was declared lost; None while it is not."""
    moved: list[Placed] = field(default_factory=list)
    """Replicas it ran when it was lost, which run elsewhere now."""

    @property
    def last_seen(self) -> float:
        return self.recent[-1].at if self.recent else self.joined_at

    def heard(self, beat: Heartbeat) -> None:
        if self.recent and beat.at < self.recent[-1].at:
            return
        self.recent = [*self.recent[-1:], beat]


@dataclass(frozen=True)
class NodeLoss:
    node: str
    last_heartbeat_at: float
    silent_s: float
    evidence: str


@dataclass(frozen=True)
class NodeReturn:
    node: str
    lost_for_s: float
    stops: list[Placed]


def lost_nodes(
    nodes: Iterable[NodeWatch], now: float, timeout_s: float, watching_since: float = 0.0
) -> list[NodeLoss]:
    """Nodes silent for longer than the timeout that are not already lost.

    Silence counts from `watching_since` at the earliest (when this healer started): a
    healer that was down itself does not blame nodes for what it could not hear, as
    Kubernetes' node controller gives every node a fresh grace period when it starts."""
    found = []
    for watch in nodes:
        silent = now - max(watch.last_seen, watching_since)
        if watch.lost_at is None and silent > timeout_s:
            seq = f", last seq {watch.recent[-1].seq}" if watch.recent else ", never heartbeated"
            found.append(
                NodeLoss(
                    node=watch.node,
                    last_heartbeat_at=watch.last_seen,
                    silent_s=silent,
                    evidence=f"no heartbeat for {silent:.1f} s (timeout {timeout_s:g} s{seq})",
                )
            )
    return found


def returned_nodes(nodes: Iterable[NodeWatch]) -> list[NodeReturn]:
    """Lost nodes heartbeating again: what moved away while they were gone must stop there."""
    back = []
    for watch in nodes:
        if watch.lost_at is not None and watch.recent and watch.recent[-1].at > watch.lost_at:
            back.append(
                NodeReturn(
                    node=watch.node,
                    lost_for_s=watch.recent[-1].at - watch.lost_at,
                    stops=list(watch.moved),
                )
            )
    return back


@dataclass
class RevisionHealth:
    created_at: float
    ever_ready: bool = False
    failures: int = 0
    last_failure: str = ""


@dataclass
class FunctionHealth:
    current: int
    revisions: dict[int, RevisionHealth] = field(default_factory=dict)
    rolled_back: set[int] = field(default_factory=set)
    """Revisions already rolled back from: never a rollback target, never judged again."""
    deleted: bool = False


@dataclass(frozen=True)
class Rollback:
    function: str
    from_revision: int
    to_revision: int
    reason: str


def rollback_for(
    name: str,
    health: FunctionHealth,
    now: float,
    *,
    progress_deadline_s: float,
    failure_threshold: int,
) -> Rollback | None:
    """Roll a failing new revision back to the newest older one that was healthy.

    A revision fails when it crashes `failure_threshold` times within its progress deadline,
    or when the deadline passes without one ready replica. With no healthy revision to go
    back to there is no rollback (the crash-loop back-off goes on)."""
    current = health.revisions.get(health.current)
    if health.deleted or current is None or health.current in health.rolled_back:
        return None
    age = now - current.created_at
    if current.failures >= failure_threshold and age <= progress_deadline_s:
        reason = (
            f"revision {health.current} failed {current.failures} times within "
            f"{age:.1f} s of its rollout (last: {current.last_failure})"
        )
    elif not current.ever_ready and age > progress_deadline_s:
        reason = (
            f"revision {health.current} had no ready replica within its progress deadline "
            f"of {progress_deadline_s:g} s"
            + (f" (last failure: {current.last_failure})" if current.last_failure else "")
        )
    else:
        return None
    healthy = [
        revision
        for revision, record in health.revisions.items()
        if revision < health.current and record.ever_ready and revision not in health.rolled_back
    ]
    if not healthy:
        return None
    target = max(healthy)
    return Rollback(
        function=name,
        from_revision=health.current,
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


def drift(
    watch: NodeWatch,
    placed: Mapping[str, Placed],
    ended: Mapping[str, float],
    *,
    grace_s: float,
    start_grace_s: float,
) -> list[Repair]:
    """Differences between what the log says runs on a node and what its agent reported in
    its two newest heartbeats, ignoring anything younger than the grace periods (events and
    heartbeats travel on different topics and can overtake each other).

    `ended` maps replicas that ended (or were told to stop) to the time from which a node
    still reporting them is drift."""
    if watch.lost_at is not None or len(watch.recent) < 2:
        return []
    older, newer = watch.recent
    repairs = []
    for replica_id in sorted(older.replica_ids & newer.replica_ids):
        if replica_id in placed:
            continue
        quiet_until = ended.get(replica_id)
        if quiet_until is not None and older.at < quiet_until:
            continue
        repairs.append(
            Repair(
                kind="unknown",
                node=watch.node,
                replica_id=replica_id,
                function="",
                revision=0,
                reason=(
                    f"node {watch.node} runs {replica_id}, which the log says "
                    + ("has ended" if quiet_until is not None else "was never started there")
                ),
            )
        )
    for replica in placed.values():
        if replica.node != watch.node or replica.leaving:
            continue
        if replica_id_in(replica.replica_id, older, newer):
            continue
        if replica.acknowledged_at is not None:
            since = replica.acknowledged_at + grace_s
            what = "its agent reported it"
        else:
            since = replica.commanded_at + start_grace_s
            what = "it was commanded"
        if older.at < since:
            continue
        repairs.append(
            Repair(
                kind="missing",
                node=watch.node,
                replica_id=replica.replica_id,
                function=replica.function,
                revision=replica.revision,
                reason=(
                    f"node {watch.node} stopped reporting {replica.replica_id} "
                    f"(absent from heartbeats {older.seq} and {newer.seq} after {what})"
                ),
            )
        )
    return repairs


def replica_id_in(replica_id: str, *beats: Heartbeat) -> bool:
    return any(replica_id in beat.replica_ids for beat in beats)
