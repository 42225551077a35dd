"""Placement (pure), in Kubernetes' two phases: filter the nodes that can take a replica,
then score them. Scoring looks at a bounded sample of feasible nodes, as kube-scheduler's
percentageOfNodesToScore does, so that placement stays cheap on thousands of nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Policy = Literal["spread", "binpack"]


@dataclass
class NodeRoom:
    """What the scheduler has reserved on a node (from its own commands, not heartbeats),
    held per replica so that placing and hearing the placement back reserve once."""

    node: str
    cpus: float
    memory_mb: float
    max_replicas: int
    schedulable: bool
    evacuating: bool = False
    """Its replicas must move (draining, lost, silent); a cordoned node keeps them."""
    used_cpus: float = 0.0
    used_memory_mb: float = 0.0
    replicas: int = 0
    by_function: dict[str, int] = field(default_factory=dict)
    busy: frozenset[str] = frozenset()
    """Its replicas in use at its newest heartbeat (a scale-down stops the others first)."""
    held: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    """Replica id -> (function, CPU, memory) reserved for it."""

    def fits(self, cpu: float, memory_mb: float) -> str | None:
        """None when the replica fits, else why not."""
        if not self.schedulable:
            return "not schedulable"
        if self.replicas >= self.max_replicas:
            return "replica slots full"
        if self.used_cpus + cpu > self.cpus + 1e-9:
            return "not enough CPU"
        if self.used_memory_mb + memory_mb > self.memory_mb + 1e-9:
            return "not enough memory"
        return None

    def reserve(self, replica_id: str, function: str, cpu: float, memory_mb: float) -> None:
        """Hold room for a replica; holding it again with the same amounts changes nothing."""
        wanted = (function, cpu, memory_mb)
        before = self.held.get(replica_id)
        if before == wanted:
            return
        if before is not None:
            self._count(*before, sign=-1)
        self.held[replica_id] = wanted
        self._count(*wanted, sign=1)

    def release(self, replica_id: str) -> None:
        before = self.held.pop(replica_id, None)
        if before is not None:
            self._count(*before, sign=-1)

    def _count(self, function: str, cpu: float, memory_mb: float, *, sign: int) -> None:
        self.used_cpus = max(0.0, self.used_cpus + sign * cpu)
        self.used_memory_mb = max(0.0, self.used_memory_mb + sign * memory_mb)
        self.replicas = max(0, self.replicas + sign)
        left = self.by_function.get(function, 0) + sign
        if left > 0:
            self.by_function[function] = left
        else:
            self.by_function.pop(function, None)


def score(room: NodeRoom, function: str, cpu: float, memory_mb: float, policy: Policy) -> float:
    """Higher is better. Spread: most free after placing; binpack: least free. Both prefer
    nodes with fewer replicas of the same function (spread across nodes)."""
    free_cpu = (room.cpus - room.used_cpus - cpu) / room.cpus if room.cpus else 0.0
    free_memory = (
        (room.memory_mb - room.used_memory_mb - memory_mb) / room.memory_mb
        if room.memory_mb
        else 0.0
    )
    free = (free_cpu + free_memory) / 2
    fit = free if policy == "spread" else 1 - free
    return fit - room.by_function.get(function, 0)


@dataclass
class Placer:
    """Places replicas one at a time over nodes, remembering where its last search ended."""

    policy: Policy = "spread"
    sample: int = 100
    _offset: int = 0

    def place(
        self,
        rooms: list[NodeRoom],
        function: str,
        cpu: float,
        memory_mb: float,
        *,
        replica_id: str,
    ) -> NodeRoom | str:
        """The chosen node (reserved for `replica_id`), or the reason none fits."""
        if not rooms:
            return "no nodes have joined"
        feasible: list[NodeRoom] = []
        reasons: dict[str, int] = {}
        count = len(rooms)
        for step in range(count):
            room = rooms[(self._offset + step) % count]
            why = room.fits(cpu, memory_mb)
            if why is None:
                feasible.append(room)
                if len(feasible) >= self.sample:
                    self._offset = (self._offset + step + 1) % count
                    break
            else:
                reasons[why] = reasons.get(why, 0) + 1
        if not feasible:
            summary = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
            return f"no node fits {cpu:g} CPU / {memory_mb:g} MB ({summary})"
        best = max(feasible, key=lambda r: score(r, function, cpu, memory_mb, self.policy))
        best.reserve(replica_id, function, cpu, memory_mb)
        return best


@dataclass(frozen=True)
class Candidate:
    replica_id: str
    node: str
    ready: bool


def choose_victims(
    candidates: list[Candidate], rooms: dict[str, NodeRoom], count: int
) -> list[Candidate]:
    """Which replicas go in a scale-down: those on unschedulable (cordoned) nodes first,
    then not-yet-ready ones, then idle ones (no connection open, no CPU used at their
    node's newest heartbeat), then those on the most loaded nodes."""

    def order(c: Candidate) -> tuple[int, int, int, float, str]:
        room = rooms.get(c.node)
        schedulable = room.schedulable if room else False
        busy = c.replica_id in room.busy if room else False
        load = (room.used_cpus / room.cpus) if room and room.cpus else 0.0
        return (int(schedulable), int(c.ready), int(busy), -load, c.replica_id)

    return sorted(candidates, key=order)[:count]
