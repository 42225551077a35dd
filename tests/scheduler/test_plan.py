"""The scheduler's plan for one function: scale, roll out, drain nodes, back off."""

from __future__ import annotations

import msgspec

from events.lifecycle import ReplicaState
from events.projections.failures import RevisionRecord
from events.projections.functions import FunctionView
from events.projections.replicas import ReplicaView
from events.projections.traffic import Rollout
from events.types import FunctionSpec
from services.scheduler.placement import NodeRoom, Placer
from services.scheduler.plan import FunctionPlan, plan_function, revision_targets

SPEC = FunctionSpec(name="f", image="i", cpu=0.5, memory_mb=128)


def rooms(
    *names: str, cordoned: tuple[str, ...] = (), draining: tuple[str, ...] = ()
) -> dict[str, NodeRoom]:
    return {
        n: NodeRoom(
            node=n,
            cpus=4,
            memory_mb=4096,
            max_replicas=20,
            schedulable=n not in cordoned + draining,
            evacuating=n in draining,
        )
        for n in names
    }


def replica(
    rid: str, *, revision: int = 1, node: str = "a", state: str = "ready", leaving: bool = False
) -> ReplicaView:
    return ReplicaView(
        replica_id=rid,
        function="f",
        revision=revision,
        node=node,
        cpu=0.5,
        memory_mb=128,
        state=ReplicaState(state),
        leaving=leaving,
    )


def plan(
    replicas: list[ReplicaView],
    desired: int | None,
    *,
    revision: int = 1,
    nodes: dict[str, NodeRoom] | None = None,
    spec: FunctionSpec | None = SPEC,
    failures: RevisionRecord | None = None,
    now: float = 100.0,
) -> FunctionPlan:
    return plan_function(
        function="f",
        spec=spec,
        revision=revision,
        desired=desired,
        replicas=replicas,
        rooms=nodes or rooms("a", "b"),
        placer=Placer(),
        failures=failures or RevisionRecord(),
        now=now,
        new_replica_id="f-x",
    )


def drained(p: FunctionPlan) -> list[str]:
    return sorted(r.replica_id for r, _ in p.drains)


def test_without_a_decision_nothing_happens() -> None:
    assert plan([], None) == FunctionPlan()


def test_missing_replicas_are_started_spread_over_nodes() -> None:
    p = plan([], 3)
    assert [(rid, rev) for rid, rev, _ in p.starts] == [("f-x-0", 1), ("f-x-1", 1), ("f-x-2", 1)]
    assert {node for _, _, node in p.starts} == {"a", "b"}


def test_replicas_already_commanded_or_starting_count_as_actual() -> None:
    p = plan([replica("r1", state="commanded"), replica("r2", state="starting")], 2)
    assert p.starts == [] and p.drains == []


def test_leaving_replicas_do_not_count() -> None:
    assert len(plan([replica("r1", leaving=True)], 1).starts) == 1


def test_a_scale_down_drains_the_surplus() -> None:
    p = plan([replica("r1"), replica("r2"), replica("r3", state="starting")], 1)
    assert drained(p) == ["r2", "r3"] or drained(p) == ["r1", "r3"]
    assert all("scaled down to 1" in why for _, why in p.drains)


def test_placement_reserves_the_request_not_the_limit() -> None:
    def node() -> dict[str, NodeRoom]:
        return {"a": NodeRoom(node="a", cpus=1, memory_mb=4096, max_replicas=100, schedulable=True)}

    assert len(plan([], 20, nodes=node()).starts) == 20  # 20 x 0.05 requested, 20 x 0.5 limit
    asked = msgspec.structs.replace(SPEC, cpu_request=0.5, memory_request_mb=64)
    p = plan([], 3, nodes=node(), spec=asked)
    assert len(p.starts) == 2 and p.pending == 1
    assert asked.requested_cpu == 0.5 and asked.requested_memory_mb == 64


def test_a_deleted_function_drains_everything() -> None:
    p = plan([replica("r1"), replica("r2")], 2, spec=None)
    assert drained(p) == ["r1", "r2"]


def test_a_rollout_surges_one_then_drains_old_only_as_new_ones_get_ready() -> None:
    old = [replica("o1"), replica("o2"), replica("o3")]
    first = plan(old, 3, revision=2)
    assert [(rev) for _, rev, _ in first.starts] == [2] and first.drains == []
    starting = plan([*old, replica("n1", revision=2, state="starting")], 3, revision=2)
    assert starting.starts == [] and starting.drains == []
    one_ready = plan([*old, replica("n1", revision=2)], 3, revision=2)
    assert len(one_ready.drains) == 1, "one old replica goes for the one new ready"
    assert "replaced by revision 2" in one_ready.drains[0][1]
    assert [rev for _, rev, _ in one_ready.starts] == [2], "and the next surge starts"


def test_a_rollout_never_leaves_fewer_ready_replicas_than_before() -> None:
    replicas = [replica("o1"), replica("o2")]
    ready_before = 2
    for step in range(6):
        p = plan(replicas, 2, revision=2)
        leaving = {r.replica_id for r, _ in p.drains}
        replicas = [r for r in replicas if r.replica_id not in leaving]
        replicas += [
            replica(f"n{step}-{rid}", revision=rev, node=node, state="ready")
            for rid, rev, node in p.starts
        ]
        assert sum(1 for r in replicas if r.state is ReplicaState.READY) >= ready_before
    assert {r.revision for r in replicas} == {2}
    assert len(replicas) == 2


def test_old_replicas_that_are_not_ready_are_replaced_at_once() -> None:
    p = plan([replica("o1", state="starting")], 1, revision=2)
    assert drained(p) == ["o1"]
    assert len(p.starts) == 1


def test_a_cordoned_node_keeps_its_replicas_but_gets_no_new_one() -> None:
    nodes = rooms("a", "b", cordoned=("a",))
    kept = plan([replica("r1", node="a"), replica("r2", node="a")], 2, nodes=nodes)
    assert kept.starts == [] and kept.drains == []
    more = plan([replica("r1", node="a")], 2, nodes=nodes)
    assert [node for _, _, node in more.starts] == ["b"]


def test_replicas_on_a_draining_node_move_one_at_a_time() -> None:
    nodes = rooms("a", "b", draining=("a",))
    p = plan([replica("r1", node="a"), replica("r2", node="a")], 2, nodes=nodes)
    assert len(p.starts) == 1 and p.starts[0][2] == "b"
    assert p.drains == []
    moved = plan(
        [replica("r1", node="a"), replica("r2", node="a"), replica("r3", node="b")], 2, nodes=nodes
    )
    assert len(moved.drains) == 1
    assert "moved off" in moved.drains[0][1]


def test_no_feasible_node_leaves_replicas_pending_with_the_reason() -> None:
    tiny = {"a": NodeRoom(node="a", cpus=0.02, memory_mb=4096, max_replicas=5, schedulable=True)}
    p = plan([], 2, nodes=tiny)  # each requests 0.05 CPU (its limit is 0.5)
    assert p.starts == []
    assert p.pending == 2
    assert "not enough CPU" in p.pending_reason


def crash_loop(count: int, last: float) -> RevisionRecord:
    return RevisionRecord(failures=count, since_ready=count, last_failure_heard_at=last)


def test_a_crash_looping_function_backs_off_exponentially() -> None:
    assert len(plan([], 1, failures=crash_loop(1, 100.0), now=100.0).starts) == 1
    failures = crash_loop(3, 100.0)
    waiting = plan([], 1, failures=failures, now=101.5)
    assert waiting.starts == [] and waiting.pending == 1
    assert "back-off" in waiting.pending_reason
    assert waiting.pending_reason == plan([], 1, failures=failures, now=101.9).pending_reason, (
        "the reason does not change while the back-off counts down"
    )
    assert len(plan([], 1, failures=failures, now=102.5).starts) == 1
    assert crash_loop(4, 0).back_off_until() == 4.0
    assert crash_loop(30, 0).back_off_until() == 60.0


def view_with(**fields: object) -> FunctionView:
    spec1, spec2 = SPEC, msgspec.structs.replace(SPEC, image="i2", rollout="canary")
    view = FunctionView(
        name="f", spec=spec2, revision=2, revisions={1: spec1, 2: spec2}, first_revision=1
    )
    for name, value in fields.items():
        setattr(view, name, value)
    return view


def test_all_calls_to_the_latest_plan_it_alone_with_every_replica() -> None:
    live = [replica("old", revision=1), replica("new", revision=2)]
    assert revision_targets(view_with(desired=3), live) == [(2, 3, live)]


def test_a_canary_runs_beside_the_stable_revision_which_keeps_its_replicas() -> None:
    stable = [replica("s1"), replica("s2", node="b")]
    view = view_with(desired=2, rollout=Rollout(canary=2, stable=1, step=1, percent=5))
    targets = revision_targets(view, stable)
    assert targets == [(1, 2, stable), (2, 1, [])]
    canary = plan([], 1, revision=2)
    assert len(canary.starts) == 1 and not plan(stable, 2).drains


def test_the_decisions_share_is_used_while_it_names_the_revisions_that_run() -> None:
    view = view_with(
        desired=4,
        split={1: 50, 2: 50},
        desired_split={1: 3, 2: 2},
    )
    assert [(r, n) for r, n, _ in revision_targets(view, [])] == [(1, 3), (2, 2)]
    view.split = {1: 90, 2: 10}
    view.tags = {"t": 2}
    view.desired_split = {1: 4}  # from before the tag: shared again, as the autoscaler does
    assert [(r, n) for r, n, _ in revision_targets(view, [])] == [(1, 4), (2, 1)]


def test_replicas_of_revisions_that_no_longer_run_go_with_the_largest_share() -> None:
    gone = replica("gone", revision=1)
    view = view_with(desired=2, split={2: 100}, tags={"t": 2})
    view.revisions[3] = SPEC
    view.split = {2: 80, 3: 20}
    targets = {r: reps for r, _, reps in revision_targets(view, [gone])}
    assert targets == {2: [gone], 3: []}
