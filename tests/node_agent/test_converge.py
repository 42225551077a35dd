"""A node-agent converges on what the folded log says: tables of commands and facts."""

from __future__ import annotations

from dataclasses import dataclass

from events.envelope import new_envelope
from events.lifecycle import ReplicaState
from events.projections.world import World
from events.types import (
    DrainReplica,
    FunctionSpec,
    NodeLost,
    Payload,
    StartReplica,
    StopReplica,
)
from services.node_agent.converge import Steps, converge

SPEC = FunctionSpec(name="f", image="i")


@dataclass
class Running:
    state: ReplicaState = ReplicaState.READY
    leaving: bool = False
    stopping: bool = False


def start(rid: str, generation: int = 0) -> StartReplica:
    return StartReplica(
        node="n", function="f", revision=1, replica_id=rid, spec=SPEC, node_generation=generation
    )


def steps(
    history: list[Payload],
    tracked: dict[str, Running] | None = None,
    done: frozenset[str] = frozenset(),
) -> Steps:
    world = World()
    commands: dict[str, tuple[StartReplica, str]] = {}
    leaves: dict[str, tuple[DrainReplica | StopReplica, str]] = {}
    for payload in history:
        envelope = new_envelope(payload, source="/t")
        world.apply(envelope, 0.0)
        if isinstance(payload, StartReplica):
            commands.setdefault(payload.replica_id, (payload, envelope.id))
        elif isinstance(payload, DrainReplica | StopReplica):
            leaves[payload.replica_id] = (payload, envelope.id)
    return converge(
        commands=commands,
        leaves=leaves,
        view=world.replicas.get,
        tracked=tracked or {},
        done=done,
    )


LOST = NodeLost(node="n", last_heartbeat_at="", timeout_s=3, evidence="silent", generation=0)


def test_a_start_is_carried_out_once_and_never_after_the_replica_is_done() -> None:
    assert [c.replica_id for c, _ in steps([start("a")]).starts] == ["a"]
    assert steps([start("a")], tracked={"a": Running()}).starts == []
    assert steps([start("a")], done=frozenset({"a"})).starts == []


def test_a_start_read_with_its_nodes_loss_is_never_carried_out() -> None:
    found = steps([start("stale", 0), LOST, start("fresh", 1)])
    assert [c.replica_id for c, _ in found.starts] == ["fresh"]
    assert found.forget == ["stale"]


def test_a_start_followed_by_a_drain_or_stop_is_never_carried_out() -> None:
    drained = DrainReplica(node="n", function="f", replica_id="a")
    found = steps([start("a"), drained])
    assert found.starts == [] and found.forget == ["a"]


def test_a_running_replica_told_to_drain_drains_once_and_a_stop_stops_it_at_once() -> None:
    drained = DrainReplica(node="n", function="f", replica_id="a", drain_s=1)
    assert [rid for rid, _, _ in steps([start("a"), drained], {"a": Running()}).drains] == ["a"]
    assert steps([start("a"), drained], {"a": Running(leaving=True)}).drains == []
    stopped = StopReplica(node="n", function="f", replica_id="a", reason="moved")
    found = steps([start("a"), drained, stopped], {"a": Running(leaving=True)})
    assert [(rid, reason) for rid, reason, _ in found.stops] == [("a", "moved")]


def test_a_replica_running_while_its_node_was_declared_lost_is_stopped() -> None:
    found = steps([start("a", 0), LOST], {"a": Running()})
    ((rid, reason, _),) = found.stops
    assert rid == "a" and "declared lost" in reason
    assert steps([start("a", 0), LOST], {"a": Running(stopping=True)}).stops == []
