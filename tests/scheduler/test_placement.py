"""Placement: filter, then score; and the choice of scale-down victims."""

from __future__ import annotations

import pytest

from services.scheduler.placement import Candidate, NodeRoom, Placer, choose_victims


def room(
    node: str,
    *,
    cpus: float = 4,
    memory_mb: float = 4096,
    used_cpus: float = 0,
    slots: int = 10,
    schedulable: bool = True,
    **by_function: int,
) -> NodeRoom:
    r = NodeRoom(
        node=node,
        cpus=cpus,
        memory_mb=memory_mb,
        max_replicas=slots,
        schedulable=schedulable,
        used_cpus=used_cpus,
    )
    r.by_function.update(by_function)
    r.replicas = sum(by_function.values())
    return r


@pytest.mark.parametrize(
    ("rooms", "expected"),
    [
        ([room("a", schedulable=False), room("b")], "b"),
        ([room("a", cpus=0.4), room("b")], "b"),
        ([room("a", memory_mb=100), room("b")], "b"),
        ([room("a", slots=0), room("b")], "b"),
        ([room("a", used_cpus=3), room("b", used_cpus=1)], "b"),
    ],
)
def test_infeasible_nodes_are_filtered_and_the_least_allocated_wins(
    rooms: list[NodeRoom], expected: str
) -> None:
    chosen = Placer().place(rooms, "f", 0.5, 128, replica_id="r")
    assert isinstance(chosen, NodeRoom) and chosen.node == expected


def test_binpack_prefers_the_most_allocated_feasible_node() -> None:
    chosen = Placer(policy="binpack").place(
        [room("a", used_cpus=1), room("b", used_cpus=3)], "f", 0.5, 128, replica_id="r"
    )
    assert isinstance(chosen, NodeRoom) and chosen.node == "b"


def test_replicas_of_one_function_spread_across_nodes() -> None:
    rooms = [room("a", f=1), room("b")]
    chosen = Placer(policy="binpack").place(rooms, "f", 0.5, 128, replica_id="r")
    assert isinstance(chosen, NodeRoom) and chosen.node == "b"


def test_placing_reserves_and_fills_nodes_in_turn() -> None:
    rooms = [room("a", cpus=1), room("b", cpus=1)]
    placer = Placer()
    nodes = [placer.place(rooms, "f", 0.5, 128, replica_id=f"r{n}") for n in range(4)]
    assert sorted(n.node for n in nodes if isinstance(n, NodeRoom)) == ["a", "a", "b", "b"]
    reason = placer.place(rooms, "f", 0.5, 128, replica_id="r5")
    assert reason == "no node fits 0.5 CPU / 128 MB (2 not enough CPU)"


def test_with_no_nodes_the_reason_says_so() -> None:
    assert Placer().place([], "f", 0.5, 128, replica_id="r") == "no nodes have joined"


def test_a_sample_bounds_the_nodes_scored() -> None:
    rooms = [room(f"n{i:03d}", used_cpus=i / 100) for i in range(300)]
    placer = Placer(sample=10)
    first = placer.place(rooms, "f", 0.1, 16, replica_id="r1")
    assert isinstance(first, NodeRoom) and first.node == "n000"
    second = placer.place(rooms, "f", 0.1, 16, replica_id="r2")
    assert isinstance(second, NodeRoom) and second.node == "n010", "the next search goes on"


def test_victims_come_from_cordoned_nodes_then_unready_then_the_most_loaded() -> None:
    rooms = {
        "cordoned": room("cordoned", schedulable=False),
        "busy": room("busy", used_cpus=3),
        "idle": room("idle"),
    }
    candidates = [
        Candidate("r-idle", "idle", True),
        Candidate("r-busy", "busy", True),
        Candidate("r-new", "idle", False),
        Candidate("r-cordoned", "cordoned", True),
    ]
    order = [c.replica_id for c in choose_victims(candidates, rooms, 4)]
    assert order == ["r-cordoned", "r-new", "r-busy", "r-idle"]


def test_idle_replicas_go_before_busy_ones_even_on_a_less_loaded_node() -> None:
    loaded = room("loaded", used_cpus=3)
    loaded.busy = frozenset({"r-serving"})
    rooms = {"loaded": loaded, "quiet": room("quiet")}
    candidates = [
        Candidate("r-serving", "loaded", True),
        Candidate("r-quiet", "quiet", True),
        Candidate("r-idle", "loaded", True),
    ]
    order = [c.replica_id for c in choose_victims(candidates, rooms, 3)]
    assert order == ["r-idle", "r-quiet", "r-serving"]
    assert [c.replica_id for c in choose_victims(candidates, rooms, 1)] == ["r-idle"]


def test_holding_room_again_for_the_same_replica_reserves_once() -> None:
    r = room("a")
    r.reserve("r1", "f", 0.5, 128)
    r.reserve("r1", "f", 0.5, 128)
    assert (r.used_cpus, r.replicas, r.by_function) == (0.5, 1, {"f": 1})
    r.reserve("r1", "f", 1.0, 128)
    assert r.used_cpus == 1.0, "new amounts replace the old ones"
    r.release("r1")
    r.release("r1")
    assert (r.used_cpus, r.replicas, r.by_function) == (0.0, 0, {})
