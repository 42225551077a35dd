"""Fencing: once a node has seen a command of a newer epoch of a role, the fold (the node's,
the deciders', replay's) refuses that role's commands of older epochs to that node."""

from __future__ import annotations

from datetime import UTC, datetime

from events.envelope import new_envelope
from events.fencing import Fence, role_of
from events.projections.world import World
from events.types import (
    CommandsClaimed,
    DriftRepaired,
    FunctionDeployed,
    FunctionSpec,
    NodeCapacity,
    NodeClaimed,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    ReplicaReady,
    ScaleClaimed,
    ScaleDecision,
    StartReplica,
    StopReplica,
)

SPEC = FunctionSpec(name="f", image="shoal-test/hello:1")
AT = datetime(2026, 11, 26, tzinfo=UTC)


def start(replica: str, node: str, epoch: int) -> StartReplica:
    return StartReplica(
        node=node, function="f", revision=1, replica_id=replica, spec=SPEC, epoch=epoch
    )


def test_role_of_a_source() -> None:
    assert role_of("/shoal/scheduler/scheduler-vm-12") == "scheduler"
    assert role_of("elsewhere") == "elsewhere"


def test_a_deposed_leaders_commands_are_not_folded_once_its_successor_spoke() -> None:
    world = World()
    old, new = "/shoal/scheduler/a", "/shoal/scheduler/b"
    applied = [
        world.apply(new_envelope(start("r1", "n1", 1), source=old, at=AT), 0.0),
        world.apply(new_envelope(start("r2", "n1", 2), source=new, at=AT), 0.0),
        world.apply(new_envelope(start("r3", "n1", 1), source=old, at=AT), 0.0),
        world.apply(new_envelope(start("r4", "n2", 1), source=old, at=AT), 0.0),
        world.apply(
            new_envelope(
                StopReplica(node="n1", function="f", replica_id="r2"),
                source="/shoal/healer/h",
                at=AT,
            ),
            0.0,
        ),
    ]
    assert [a is not None for a in applied] == [True, True, False, True, True]
    assert world.replicas.get("r3") is None and world.replicas.get("r4") is not None
    assert world.fence.newest("scheduler") == 2 and world.fence.newest("healer") == 0


def test_a_fence_admits_equal_and_newer_epochs() -> None:
    fence = Fence()
    assert fence.admits("node", "n1", "/shoal/healer/x", 3)
    assert fence.admits("node", "n1", "/shoal/healer/x", 3)
    assert not fence.admits("node", "n1", "/shoal/healer/y", 3), "one epoch, two leaders"
    assert not fence.admits("node", "n1", "/shoal/healer/x", 2)
    assert fence.admits("node", "n1", "/shoal/api/a", 0) and fence.admits(
        "node", "n1", "/shoal/api/b", 0
    )
    assert fence.admits("node", "n1", "/shoal/scheduler/x", 0)
    assert fence.admits("command", "n1", "/shoal/healer/x", 1), "each family apart"
    assert not fence.admits("command", "n1", "/shoal/healer/x", 2**53), "a forged epoch"
    assert fence.admits("command", "n1", "/shoal/healer/x", 2) and fence.newest("healer") == 3


def test_a_deposed_autoscalers_decision_does_not_move_the_desired_count() -> None:
    world = World()
    world.apply(
        new_envelope(
            FunctionDeployed(function="f", revision=1, spec=SPEC), source="/shoal/api/a", at=AT
        ),
        0.0,
    )
    old, new = "/shoal/autoscaler/a", "/shoal/autoscaler/b"

    def decide(desired: int, epoch: int, source: str) -> object:
        decision = ScaleDecision(
            function="f",
            revision=1,
            previous=0,
            desired=desired,
            panic=False,
            reason="r",
            epoch=epoch,
        )
        return world.apply(new_envelope(decision, source=source, at=AT), 0.0)

    assert decide(2, 1, old) is not None and decide(3, 2, new) is not None
    assert decide(9, 1, old) is None
    view = world.function("f")
    assert view is not None and view.desired == 3


def test_a_claim_fences_a_subject_its_claimant_has_decided_nothing_about() -> None:
    """The successor claims n2 before deciding anything; the deposed leader's start there,
    and its decisions about a claimed function, are refused; n3, not claimed, still obeys
    it (a subject the successor did not know)."""
    world = World()
    old, new = "/shoal/scheduler/a", "/shoal/scheduler/b"
    assert world.apply(new_envelope(start("r1", "n2", 1), source=old, at=AT), 0.0) is not None
    claimed = world.apply(new_envelope(CommandsClaimed(node="n2", epoch=2), source=new, at=AT), 0)
    assert claimed is not None and world.fence.newest("scheduler") == 2
    assert world.apply(new_envelope(start("r2", "n2", 1), source=old, at=AT), 0.0) is None
    assert world.apply(new_envelope(start("r3", "n3", 1), source=old, at=AT), 0.0) is not None
    assert world.apply(new_envelope(start("r4", "n2", 2), source=new, at=AT), 0.0) is not None
    assert world.replicas.get("r2") is None and world.replicas.get("r4") is not None
    scale = "/shoal/autoscaler/b"
    world.apply(new_envelope(ScaleClaimed(function="f", epoch=4), source=scale, at=AT), 0.0)
    decision = ScaleDecision(
        function="f", revision=1, previous=0, desired=5, panic=False, reason="r", epoch=3
    )
    assert world.apply(new_envelope(decision, source="/shoal/autoscaler/a", at=AT), 0.0) is None
    lost = NodeLost(node="n2", last_heartbeat_at="x", timeout_s=3, evidence="e", epoch=1)
    world.apply(new_envelope(NodeClaimed(node="n2", epoch=2), source="/shoal/healer/b", at=AT), 0)
    assert world.apply(new_envelope(lost, source="/shoal/healer/a", at=AT), 0.0) is None


def test_a_claim_of_another_role_or_family_fences_nothing_else() -> None:
    world = World()
    healer = "/shoal/healer/b"
    world.apply(new_envelope(CommandsClaimed(node="n1", epoch=7), source=healer, at=AT), 0.0)
    world.apply(new_envelope(NodeClaimed(node="n1", epoch=7), source=healer, at=AT), 0.0)
    started = world.apply(new_envelope(start("r1", "n1", 1), source="/shoal/scheduler/a", at=AT), 0)
    assert started is not None, "the scheduler's commands are fenced by its own role only"


def test_a_replica_first_heard_of_from_a_drift_takes_its_function_from_its_own_node() -> None:
    """A drift repair names no function; the replica's start (or its node's report) gives
    it one, and another node's report does not."""
    world = World()
    drift = DriftRepaired(node="n1", kind="missing", replica_id="r1", reason="gone")
    world.apply(new_envelope(drift, source="/shoal/healer/h", at=AT), 0.0)
    ready = ReplicaReady(
        function="other", revision=1, replica_id="r1", node="n9", endpoint="http://x:1"
    )
    world.apply(new_envelope(ready, source="/shoal/node/n9", at=AT), 0.0)
    view = world.replicas.get("r1")
    assert view is not None and view.function == "", "another node names nothing here"
    world.apply(new_envelope(start("r1", "n1", 1), source="/shoal/scheduler/a", at=AT), 0.0)
    assert view.function == "f" and not view.live


def test_only_nodes_that_joined_are_claimed() -> None:
    world = World()
    capacity = NodeCapacity(cpus=1, memory_mb=512, max_replicas=4)
    joined = NodeJoined(node="n1", address="127.0.0.1", runtime="docker", capacity=capacity)
    world.apply(new_envelope(joined, source="/shoal/node/n1", at=AT), 0.0)
    beat = NodeHeartbeat(
        node="ghost", seq=1, capacity=capacity, used_cpus=0, used_memory_mb=0, replicas=0
    )
    world.apply(new_envelope(beat, source="/shoal/node/n1", at=AT), 0.0)
    assert set(world.nodes.nodes) == {"n1", "ghost"} and world.nodes.joined == {"n1"}
