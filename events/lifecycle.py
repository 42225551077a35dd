"""A replica's one lifecycle, as a total order of states and its transition table.

commanded -> starting -> ready -> draining -> (lost | missing | stopped | failed)

Every state can move only forward. That makes the fold of what is said about a replica
a maximum: facts that arrive late, from another topic, or twice, never move it back, so
the result does not depend on the order they are read in. The four ended states are
ranked too (what the node itself reports outranks what others inferred), so that even
two ways of ending agree whatever the order: a replica that failed and whose node was
also declared lost is failed.
"""

from __future__ import annotations

from enum import StrEnum


class ReplicaState(StrEnum):
    COMMANDED = "commanded"
    """A start was commanded; its node has not reported it yet."""
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    LOST = "lost"
    """Its node was declared lost (with the generation it was placed in)."""
    MISSING = "missing"
    """Its node stopped reporting it (drift)."""
    STOPPED = "stopped"
    FAILED = "failed"


ORDER: tuple[ReplicaState, ...] = tuple(ReplicaState)
RANK: dict[ReplicaState, int] = {state: rank for rank, state in enumerate(ORDER)}
LIVE: frozenset[ReplicaState] = frozenset(
    {ReplicaState.COMMANDED, ReplicaState.STARTING, ReplicaState.READY, ReplicaState.DRAINING}
)
ENDED: frozenset[ReplicaState] = frozenset(ORDER) - LIVE

ALLOWED: dict[ReplicaState, frozenset[ReplicaState]] = {
    state: frozenset() if state in ENDED else frozenset(ORDER[RANK[state] + 1 :]) for state in ORDER
}
"""The transition table: a live state may move to any later one; an ended one nowhere."""


class InvalidTransition(ValueError):
    """A replica was asked to move to a state its current state cannot reach."""


def transition(current: ReplicaState, target: ReplicaState) -> ReplicaState:
    """The new state, or InvalidTransition when `current` cannot move to `target`."""
    if target not in ALLOWED[current]:
        raise InvalidTransition(f"a {current} replica cannot become {target}")
    return target


def merged(current: ReplicaState, reported: ReplicaState) -> ReplicaState:
    """What a replica is once `reported` is known too: the later of the two states."""
    return reported if RANK[reported] > RANK[current] else current
