"""Every transition of a replica's lifecycle, allowed or not, and the merge of facts."""

from __future__ import annotations

import itertools

import pytest

from events.lifecycle import ENDED, LIVE, InvalidTransition, ReplicaState, merged, transition

S = ReplicaState
FORWARD = [S.COMMANDED, S.STARTING, S.READY, S.DRAINING]
ALLOWED = {
    (current, target)
    for current in FORWARD
    for target in S
    if list(S).index(target) > list(S).index(current)
}


def test_the_table_lets_live_replicas_only_move_forward() -> None:
    assert (S.STARTING, S.READY) in ALLOWED
    assert (S.READY, S.STARTING) not in ALLOWED
    assert (S.DRAINING, S.READY) not in ALLOWED
    assert (S.STARTING, S.FAILED) in ALLOWED and (S.COMMANDED, S.LOST) in ALLOWED


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_a_replica_moves_only_along_the_allowed_transitions(current: S, target: S) -> None:
    if (current, target) in ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition, match=f"a {current} replica cannot become {target}"):
            transition(current, target)


def test_ended_states_are_final_and_live_ones_are_not() -> None:
    assert ENDED == {S.LOST, S.MISSING, S.STOPPED, S.FAILED}
    assert LIVE == set(FORWARD)
    for final in ENDED:
        assert not any(pair[0] is final for pair in ALLOWED)


def test_merging_facts_gives_the_same_state_in_any_order() -> None:
    for facts in itertools.permutations([S.STARTING, S.READY, S.LOST, S.FAILED]):
        state = S.COMMANDED
        for fact in facts:
            state = merged(state, fact)
        assert state is S.FAILED
    assert merged(S.DRAINING, S.READY) is S.DRAINING
