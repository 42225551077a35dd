"""What the scheduler should do for one function now (pure): start, drain, or wait.

Desired comes from the autoscaler's last decision; actual is what the scheduler commanded
and the node-agents reported. A revision switch or a node drain surges one replica and
drains an old one only when the new one is ready, so the ready count never drops."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.types import FunctionSpec
from services.scheduler.placement import Candidate, NodeRoom, Placer, choose_victims

MAX_SURGE = 1
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0


@dataclass
class Assigned:
    replica_id: str
    function: str
    revision: int
    node: str
    cpu: float
    memory_mb: float
    state: str = "commanded"
    leaving: bool = False
    """A drain or stop was commanded (or the agent reported draining)."""


@dataclass
class Failures:
    count: int = 0
    last_at: float = 0.0

    def back_off_until(self) -> float:
        """The first failure is replaced at once (as the kubelet restarts a container), the
        next ones after 1 s, 2 s, 4 s ... up to 60 s."""
        if self.count <= 1:
            return 0.0
        return float(self.last_at + min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self.count - 2)))


@dataclass
class FunctionPlan:
    starts: list[tuple[str, int, str]] = field(default_factory=list)
    """(replica id, revision, node) to start."""
    drains: list[tuple[Assigned, str]] = field(default_factory=list)
    """(replica, reason) to drain."""
    pending: int = 0
    pending_reason: str = ""


def plan_function(
    *,
    function: str,
    spec: FunctionSpec | None,
    revision: int,
    desired: int | None,
    replicas: list[Assigned],
    rooms: dict[str, NodeRoom],
    placer: Placer,
    failures: Failures,
    now: float,
    new_replica_id: str,
) -> FunctionPlan:
    """The commands that move one function toward its desired count.

    `spec` None means the function was deleted: everything drains. `new_replica_id` is a
    prefix; the n-th start gets the suffix -n."""
    plan = FunctionPlan()
    live = [r for r in replicas if not r.leaving]
    if spec is None:
        plan.drains = [(r, "function deleted") for r in live]
        return plan
    if desired is None:
        return plan

    def moving(r: Assigned) -> bool:
        room = rooms.get(r.node)
        return room is None or room.evacuating

    current = [r for r in live if r.revision == revision and not moving(r)]
    old = [r for r in live if r.revision != revision or moving(r)]
    current_ready = sum(1 for r in current if r.state == "ready")
    old_ready = [r for r in old if r.state == "ready"]

    # Replace: old replicas that serve nothing go at once; ready ones only as surplus.
    surplus = current_ready + len(old_ready) - desired
    for r in old:
        if r.state != "ready":
            plan.drains.append((r, "replaced: not ready on an old revision or an evacuated node"))
    for r in old_ready[: max(0, surplus)]:
        plan.drains.append(
            (
                r,
                f"replaced by revision {revision}"
                if r.revision != revision
                else "moved off a drained, lost or silent node",
            )
        )
    staying_old = len(old) - len(plan.drains)

    # Scale down within the current revision.
    if len(current) > desired:
        victims = choose_victims(
            [Candidate(r.replica_id, r.node, r.state == "ready") for r in current],
            rooms,
            len(current) - desired,
        )
        by_id = {r.replica_id: r for r in current}
        plan.drains += [(by_id[v.replica_id], f"scaled down to {desired}") for v in victims]
        return plan

    # Scale up, surging at most MAX_SURGE over desired while old replicas remain.
    missing = desired - len(current)
    if staying_old:
        missing = min(missing, desired + MAX_SURGE - len(current) - staying_old)
    if missing <= 0:
        return plan
    if now < failures.back_off_until():
        plan.pending = missing
        plan.pending_reason = (
            f"crash loop back-off: {failures.count} failure(s), next start in "
            f"{failures.back_off_until() - now:.1f} s"
        )
        return plan
    room_list = list(rooms.values())
    for n in range(missing):
        chosen = placer.place(room_list, function, spec.cpu, spec.memory_mb)
        if isinstance(chosen, str):
            plan.pending = missing - n
            plan.pending_reason = chosen
            break
        plan.starts.append((f"{new_replica_id}-{n}", revision, chosen.node))
    return plan
