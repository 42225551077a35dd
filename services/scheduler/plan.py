"""What the scheduler should do for one function now (pure): start, drain, or wait.

Desired comes from the autoscaler's last decision; actual is the function's live replicas
in the shared projection. A revision switch or a node drain surges one replica and drains
an old one only when the new one is ready, so the ready count never drops."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.lifecycle import ReplicaState
from events.projections.failures import RevisionRecord
from events.projections.functions import FunctionView
from events.projections.replicas import ReplicaView
from events.types import FunctionSpec
from services.scheduler.placement import Candidate, NodeRoom, Placer, choose_victims

MAX_SURGE = 1


@dataclass
class FunctionPlan:
    starts: list[tuple[str, int, str]] = field(default_factory=list)
    """(replica id, revision, node) to start."""
    drains: list[tuple[ReplicaView, str]] = field(default_factory=list)
    """(replica, reason) to drain."""
    pending: int = 0
    pending_reason: str = ""

    def merge(self, other: FunctionPlan) -> None:
        """Add another revision's plan to this one."""
        self.starts += other.starts
        self.drains += other.drains
        if other.pending:
            self.pending += other.pending
            self.pending_reason = self.pending_reason or other.pending_reason


def revision_targets(
    view: FunctionView, live: list[ReplicaView]
) -> list[tuple[int, int | None, list[ReplicaView]]]:
    """(revision, desired, its replicas) for each revision that runs: the latest alone
    while calls go to it only, else each revision with a share or a tag, with the
    replicas the last decision gave it (shared as the autoscaler shares them, while it
    has not decided since the traffic changed). Replicas of revisions that run no more go with
    the revision that takes the most calls, which replaces them before they drain."""
    traffic = view.traffic
    if view.deleted or traffic.plain() or view.desired is None:
        return [(view.revision, view.desired, live)]
    kept = traffic.kept()
    shared = {r: n for r, n in view.desired_split.items() if r in kept and r in view.revisions}
    if set(shared) != kept:  # the traffic changed since the decision: share it the same way
        shared = traffic.replicas(view.desired)
    primary = traffic.primary() if traffic.primary() in shared else max(shared)
    return [
        (
            revision,
            desired,
            [
                r
                for r in live
                if r.revision == revision or (revision == primary and r.revision not in shared)
            ],
        )
        for revision, desired in sorted(shared.items())
    ]


def _ready(replica: ReplicaView) -> bool:
    return replica.state is ReplicaState.READY


def plan_function(
    *,
    function: str,
    spec: FunctionSpec | None,
    revision: int,
    desired: int | None,
    replicas: list[ReplicaView],
    rooms: dict[str, NodeRoom],
    placer: Placer,
    failures: RevisionRecord,
    now: float,
    new_replica_id: str,
) -> FunctionPlan:
    """The commands that move one function toward its desired count.

    `spec` None means the function was deleted: everything drains. `new_replica_id` is a
    prefix; the n-th start gets the suffix -n. `now` and the back-off in `failures` are on
    the same clock."""
    plan = FunctionPlan()
    live = [r for r in replicas if not r.leaving]
    if spec is None:
        plan.drains = [(r, "function deleted") for r in live]
        return plan
    if desired is None:
        return plan

    def moving(r: ReplicaView) -> bool:
        room = rooms.get(r.node)
        return room is None or room.evacuating

    current = [r for r in live if r.revision == revision and not moving(r)]
    old = [r for r in live if r.revision != revision or moving(r)]
    staying_old = _replace_old(plan, old, current, desired=desired, revision=revision)
    if len(current) > desired:
        _scale_down(plan, current, rooms, desired)
        return plan
    missing = desired - len(current)
    if staying_old:
        missing = min(missing, desired + MAX_SURGE - len(current) - staying_old)
    if missing > 0:
        _scale_up(
            plan,
            missing,
            spec=spec,
            placement=(placer, list(rooms.values())),
            failures=failures,
            now=now,
            ids=(function, revision, new_replica_id),
        )
    return plan


def _replace_old(
    plan: FunctionPlan,
    old: list[ReplicaView],
    current: list[ReplicaView],
    *,
    desired: int,
    revision: int,
) -> int:
    """Drain old replicas that serve nothing at once, ready ones only as surplus; returns
    how many old replicas stay for now."""
    old_ready = [r for r in old if _ready(r)]
    surplus = sum(1 for r in current if _ready(r)) + len(old_ready) - desired
    for r in old:
        if not _ready(r):
            plan.drains.append((r, "replaced: not ready on an old revision or an evacuated node"))
    for r in old_ready[: max(0, surplus)]:
        reason = (
            f"replaced by revision {revision}"
            if r.revision != revision
            else "moved off a drained, lost or silent node"
        )
        plan.drains.append((r, reason))
    return len(old) - len(plan.drains)


def _scale_down(
    plan: FunctionPlan, current: list[ReplicaView], rooms: dict[str, NodeRoom], desired: int
) -> None:
    victims = choose_victims(
        [Candidate(r.replica_id, r.node, _ready(r)) for r in current], rooms, len(current) - desired
    )
    by_id = {r.replica_id: r for r in current}
    plan.drains += [(by_id[v.replica_id], f"scaled down to {desired}") for v in victims]


def _scale_up(
    plan: FunctionPlan,
    missing: int,
    *,
    spec: FunctionSpec,
    placement: tuple[Placer, list[NodeRoom]],
    failures: RevisionRecord,
    now: float,
    ids: tuple[str, int, str],
) -> None:
    """Start what is missing, unless the revision is in crash-loop back-off or no node fits.
    Each placement holds room under the new replica's id, so the start command, when it
    is applied, reserves nothing twice."""
    function, revision, prefix = ids
    wait_until = failures.back_off_until()
    if now < wait_until:
        plan.pending = missing
        plan.pending_reason = (
            f"crash loop back-off: {failures.since_ready} failure(s), "
            f"waiting {wait_until - failures.last_failure_heard_at:g} s after the last"
        )
        return
    placer, rooms = placement
    for n in range(missing):
        replica_id = f"{prefix}-{n}"
        chosen = placer.place(
            rooms, function, spec.requested_cpu, spec.requested_memory_mb, replica_id=replica_id
        )
        if isinstance(chosen, str):
            plan.pending, plan.pending_reason = missing - n, chosen
            return
        plan.starts.append((replica_id, revision, chosen.node))
