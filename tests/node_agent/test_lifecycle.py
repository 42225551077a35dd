"""Every transition of a replica's lifecycle, allowed or not."""

from __future__ import annotations

import pytest

from services.node_agent.lifecycle import InvalidTransition, ReplicaState, transition

S = ReplicaState
ALLOWED = {
    (S.STARTING, S.READY),
    (S.STARTING, S.DRAINING),
    (S.STARTING, S.STOPPED),
    (S.STARTING, S.FAILED),
    (S.READY, S.DRAINING),
    (S.READY, S.STOPPED),
    (S.READY, S.FAILED),
    (S.DRAINING, S.STOPPED),
    (S.DRAINING, S.FAILED),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_a_replica_moves_only_along_the_allowed_transitions(current: S, target: S) -> None:
    if (current, target) in ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition, match=f"a {current} replica cannot become {target}"):
            transition(current, target)


def test_stopped_and_failed_are_final() -> None:
    for final in (S.STOPPED, S.FAILED):
        assert not any(
            transition_allowed for transition_allowed in ALLOWED if transition_allowed[0] is final
        )
