"""What a node-agent does with the containers it finds (pure): adopt those still wanted,
remove the rest, and report the wanted ones whose containers are gone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from events.types import StartReplica
from services.node_agent.runtime import Running


class Ids(Protocol):
    def __contains__(self, replica_id: str, /) -> bool: ...


@dataclass
class ReconcilePlan:
    adopt: list[tuple[Running, StartReplica]] = field(default_factory=list)
    """Running containers still wanted: the agent takes them on again."""
    remove: list[tuple[Running, StartReplica | None]] = field(default_factory=list)
    """Containers to remove: not wanted (None: an orphan), or wanted but no longer running."""
    gone: list[StartReplica] = field(default_factory=list)
    """Wanted replicas with no container at all."""


def plan_reconcile(
    owned: Iterable[Running],
    wanted: Mapping[str, StartReplica],
    *,
    tracked: Ids,
    done: Ids,
) -> ReconcilePlan:
    """`owned`: the node's containers; `wanted`: the start commands still in force;
    `tracked`: replicas the agent already manages; `done`: replicas it has finished with."""
    plan = ReconcilePlan()
    found = set()
    for running in owned:
        found.add(running.replica_id)
        if running.replica_id in tracked:
            continue
        command = wanted.get(running.replica_id)
        if command is not None and running.running and running.replica_id not in done:
            plan.adopt.append((running, command))
        else:
            plan.remove.append((running, command))
    plan.gone = [
        command
        for replica_id, command in wanted.items()
        if replica_id not in found and replica_id not in tracked and replica_id not in done
    ]
    return plan
