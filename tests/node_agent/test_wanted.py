"""The fold of a node's command history into the replicas it should run."""

from __future__ import annotations

from events.types import DrainReplica, FunctionSpec, StartReplica, StopReplica
from services.node_agent.wanted import fold_commands

SPEC = FunctionSpec(name="f", image="i")


def start(replica: str) -> StartReplica:
    return StartReplica(node="n", function="f", revision=1, replica_id=replica, spec=SPEC)


def test_started_replicas_are_wanted_until_drained_or_stopped() -> None:
    history = [
        start("a"),
        start("b"),
        start("c"),
        DrainReplica(node="n", function="f", replica_id="a"),
        StopReplica(node="n", function="f", replica_id="c"),
    ]
    wanted: dict[str, StartReplica] = {}
    for command in history:
        fold_commands(wanted, command)
    assert set(wanted) == {"b"}


def test_a_repeated_start_keeps_the_first_command() -> None:
    first, again = (
        start("a"),
        StartReplica(node="n", function="f", revision=2, replica_id="a", spec=SPEC),
    )
    wanted = fold_commands(fold_commands({}, first), again)
    assert wanted == {"a": first}


def test_a_drain_of_an_unknown_replica_changes_nothing() -> None:
    assert fold_commands({}, DrainReplica(node="n", function="f", replica_id="zz")) == {}
