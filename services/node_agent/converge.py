"""What a node-agent does to make its node run what the log says (pure): start what is
wanted and not yet run, drain or stop what was told to leave, stop what the log ended
while the node was away (its node declared lost, or the replica repaired as missing).

The agent folds every command first and acts on the result, and only once it has read
the log up to a point taken after it last acted: a start read after a long pause is
never carried out if the log meanwhile ended or moved the replica."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from events.lifecycle import LIVE, ReplicaState
from events.projections.replicas import ReplicaView
from events.types import DrainReplica, StartReplica, StopReplica


class Ids(Protocol):
    def __contains__(self, replica_id: str, /) -> bool: ...


class Tracked(Protocol):
    """A replica the agent runs, as far as converging needs to know it."""

    @property
    def state(self) -> ReplicaState: ...

    @property
    def leaving(self) -> bool: ...

    @property
    def stopping(self) -> bool: ...


@dataclass
class Steps:
    starts: list[tuple[StartReplica, str]] = field(default_factory=list)
    """(command, the id of its event)."""
    drains: list[tuple[str, DrainReplica, str]] = field(default_factory=list)
    stops: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(replica id, reason, the event that caused it)."""
    forget: list[str] = field(default_factory=list)
    """Commands done with: never started, and no longer wanted."""


ENDED_BY_LOG = {
    ReplicaState.LOST: "its node was declared lost while it ran: it runs elsewhere now",
    ReplicaState.MISSING: "it was repaired as missing while its node was away",
}


def converge(
    *,
    commands: Mapping[str, tuple[StartReplica, str]],
    leaves: Mapping[str, tuple[DrainReplica | StopReplica, str]],
    view: Callable[[str], ReplicaView | None],
    tracked: Mapping[str, Tracked],
    done: Ids,
) -> Steps:
    """The steps that bring the node to what the folded log says."""
    steps = Steps()
    for replica_id, (command, cause) in commands.items():
        seen = view(replica_id)
        wanted = seen is not None and seen.live and not seen.leaving
        replica = tracked.get(replica_id)
        if replica is None:
            if wanted and replica_id not in done:
                steps.starts.append((command, cause))
            elif not wanted:
                steps.forget.append(replica_id)
        elif not wanted and replica.state in LIVE and not replica.stopping:
            _leave(steps, replica_id, replica, leaves.get(replica_id), seen)
    return steps


def _leave(
    steps: Steps,
    replica_id: str,
    replica: Tracked,
    leave: tuple[DrainReplica | StopReplica, str] | None,
    seen: ReplicaView | None,
) -> None:
    if leave is not None and isinstance(leave[0], DrainReplica):
        if not replica.leaving and replica.state in (ReplicaState.STARTING, ReplicaState.READY):
            steps.drains.append((replica_id, leave[0], leave[1]))
        return
    if leave is not None:
        steps.stops.append((replica_id, leave[0].reason or "stopped", leave[1]))
        return
    state = seen.state if seen is not None else ReplicaState.STOPPED
    steps.stops.append((replica_id, ENDED_BY_LOG.get(state, "the log ended it"), None))
