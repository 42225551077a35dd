"""A replica's lifecycle as allowed transitions: starting -> ready -> draining -> stopped,
or failed from any live state."""

from __future__ import annotations

from enum import StrEnum


class ReplicaState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


class InvalidTransition(ValueError):
    """A replica was asked to move to a state its current state cannot reach."""


ALLOWED: dict[ReplicaState, frozenset[ReplicaState]] = {
    ReplicaState.STARTING: frozenset(
        {ReplicaState.READY, ReplicaState.DRAINING, ReplicaState.STOPPED, ReplicaState.FAILED}
    ),
    ReplicaState.READY: frozenset(
        {ReplicaState.DRAINING, ReplicaState.STOPPED, ReplicaState.FAILED}
    ),
    ReplicaState.DRAINING: frozenset({ReplicaState.STOPPED, ReplicaState.FAILED}),
    ReplicaState.STOPPED: frozenset(),
    ReplicaState.FAILED: frozenset(),
}

LIVE = frozenset({ReplicaState.STARTING, ReplicaState.READY, ReplicaState.DRAINING})


def transition(current: ReplicaState, target: ReplicaState) -> ReplicaState:
    """The new state, or InvalidTransition when `current` cannot move to `target`."""
    if target not in ALLOWED[current]:
        raise InvalidTransition(f"a {current} replica cannot become {target}")
    return target
