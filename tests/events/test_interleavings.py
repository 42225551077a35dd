"""One world, whatever the order: generated histories (deploys, updates, pins, decisions,
replica lifecycles, node loss and return, drains, drift repairs, rollbacks), delivered in
any order that keeps Kafka's order per topic and key, with duplicates, build the same
world in every service and in `shoal replay` as in the order they were written."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from events.envelope import Envelope, new_envelope
from events.lifecycle import ReplicaState
from events.projections.snapshot import snapshot, world_at
from events.projections.world import World
from events.topics import topic_of
from events.types import (
    DrainReplica,
    DriftRepaired,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    NodeCapacity,
    NodeCordoned,
    NodeDrained,
    NodeDrainRequested,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeReturned,
    NodeUncordoned,
    Payload,
    PlacementPending,
    ReplicaDraining,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    ScaleDecision,
    ScaleRequested,
    StartReplica,
    StopReplica,
)
from services.api.service import Api
from services.api.view import ApiView
from services.autoscaler.service import Autoscaler
from services.autoscaler.settings import Settings as AutoscalerSettings
from services.healer.service import Healer
from services.healer.settings import Settings as HealerSettings
from services.scheduler.service import Scheduler
from services.scheduler.settings import Settings as SchedulerSettings
from tests.support.clock import FakeClock

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FUNCTIONS = ("f0", "f1")
NODES = ("n0", "n1", "n2")
CAP = NodeCapacity(cpus=4, memory_mb=4096, max_replicas=50)
REPORTS = (ReplicaStarting, ReplicaReady, ReplicaDraining, ReplicaStopped, ReplicaFailed)


@dataclass
class Model:
    """Just enough of a cluster to write plausible histories."""

    events: list[Envelope] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)
    """Function -> its current revision, while it exists."""
    revisions: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    first: dict[str, int] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NODES, 0))
    lost: set[str] = field(default_factory=set)
    replicas: dict[str, tuple[str, int, str, int]] = field(default_factory=dict)
    """Replica -> (function, revision, node, generation)."""
    reported: dict[str, int] = field(default_factory=dict)

    skews: list[float] = field(default_factory=list)

    def emit(self, payload: Payload) -> None:
        """Written at one second per event, by writers whose clocks differ by up to a few
        seconds: the time written is not the order."""
        skew = self.skews[len(self.events) % len(self.skews)] if self.skews else 0.0
        at = T0 + timedelta(seconds=len(self.events) + skew)
        self.events.append(new_envelope(payload, source="/shoal/test/1", at=at))

    def spec(self, name: str, image: str = "img:1", **extra: Any) -> FunctionSpec:
        return FunctionSpec(name=name, image=image, cpu=0.25, memory_mb=32, **extra)


def step(model: Model, action: int, a: int, b: int) -> None:
    """Interpret one generated action; an action that makes no sense now is skipped."""
    f, node = FUNCTIONS[a % len(FUNCTIONS)], NODES[b % len(NODES)]
    ACTIONS[action % len(ACTIONS)](model, f, node, a, b)


def deploy(m: Model, f: str, node: str, a: int, b: int) -> None:
    if f in m.live:
        revision = max(m.revisions[f]) + 1
        m.emit(FunctionUpdated(function=f, revision=revision, spec=m.spec(f, f"img:{revision}")))
    else:
        revision = max(m.revisions[f], default=0) + 1
        m.first[f] = revision
        m.emit(FunctionDeployed(function=f, revision=revision, spec=m.spec(f)))
    m.live[f] = revision
    m.revisions[f].append(revision)


def patch_or_pin(m: Model, f: str, node: str, a: int, b: int) -> None:
    if f not in m.live:
        return
    if b % 2:
        m.emit(ScaleRequested(function=f, replicas=b % 5))
    else:
        spec = m.spec(f, f"img:{m.live[f]}", max_replicas=5 + b % 3)
        m.emit(FunctionUpdated(function=f, revision=m.live[f], spec=spec))


def delete_or_roll_back(m: Model, f: str, node: str, a: int, b: int) -> None:
    if f not in m.live:
        return
    older = [r for r in m.revisions[f] if m.first[f] <= r < m.live[f]]
    if b % 3 == 0 or not older:
        m.emit(FunctionDeleted(function=f))
        del m.live[f]
        return
    to = older[b % len(older)]
    m.emit(FunctionRolledBack(function=f, from_revision=m.live[f], to_revision=to, reason="r"))
    m.live[f] = to


def decide(m: Model, f: str, node: str, a: int, b: int) -> None:
    if f not in m.live:
        return
    revision = m.live[f]
    if b % 4 == 0:
        m.emit(PlacementPending(function=f, revision=revision, pending=b % 3, reason=f"r{b}"))
        return
    m.emit(
        ScaleDecision(
            function=f, revision=revision, previous=0, desired=b % 6, panic=False, reason="x"
        )
    )


def start(m: Model, f: str, node: str, a: int, b: int) -> None:
    if f not in m.live or node in m.lost:
        return
    replica_id = f"{f}-{m.live[f]}-{len(m.events)}"
    generation = m.generation[node]
    m.replicas[replica_id] = (f, m.live[f], node, generation)
    m.emit(
        StartReplica(
            node=node,
            function=f,
            revision=m.live[f],
            replica_id=replica_id,
            spec=m.spec(f),
            node_generation=generation,
        )
    )


def report(m: Model, f: str, node: str, a: int, b: int) -> None:
    if not m.replicas:
        return
    replica_id = sorted(m.replicas)[a % len(m.replicas)]
    function, revision, where, generation = m.replicas[replica_id]
    stage = m.reported.get(replica_id, -1)
    kind = b % len(REPORTS)
    if kind <= stage and kind < 3:
        return
    m.reported[replica_id] = max(stage, kind)
    fields: dict[str, Any] = {
        "function": function,
        "revision": revision,
        "replica_id": replica_id,
        "node": where,
        "node_generation": generation,
    }
    if REPORTS[kind] is ReplicaReady:
        fields["endpoint"] = f"http://127.0.0.1:{30000 + len(m.events)}"
    if REPORTS[kind] is ReplicaFailed:
        fields |= {"reason": "exited", "exit_code": b % 3}
    m.emit(REPORTS[kind](**fields))


def leave(m: Model, f: str, node: str, a: int, b: int) -> None:
    if not m.replicas:
        return
    replica_id = sorted(m.replicas)[a % len(m.replicas)]
    function, _, where, _ = m.replicas[replica_id]
    if b % 3 == 0:
        m.emit(DriftRepaired(node=where, kind="missing", replica_id=replica_id, reason="gone"))
    elif b % 3 == 1:
        m.emit(DrainReplica(node=where, function=function, replica_id=replica_id))
    else:
        m.emit(StopReplica(node=where, function=function, replica_id=replica_id))


def node_life(m: Model, f: str, node: str, a: int, b: int) -> None:
    if b % 3 == 0:
        m.emit(NodeJoined(node=node, address="127.0.0.1", runtime="sim", capacity=CAP))
    elif node in m.lost:
        m.emit(NodeReturned(node=node, lost_for_s=1.0))
        m.lost.discard(node)
    elif b % 3 == 1:
        m.emit(
            NodeLost(
                node=node,
                last_heartbeat_at="",
                timeout_s=3,
                evidence="silent",
                generation=m.generation[node],
            )
        )
        m.lost.add(node)
        m.generation[node] += 1
    else:
        m.emit(DriftRepaired(node=node, kind="unknown", replica_id=f"stray-{a}", reason="x"))


def beat(m: Model, f: str, node: str, a: int, b: int) -> None:
    ids = sorted(r for r, (_, _, where, _) in m.replicas.items() if where == node)[: b % 4]
    m.emit(
        NodeHeartbeat(
            node=node,
            seq=len(m.events),
            capacity=CAP,
            used_cpus=0.25 * len(ids),
            used_memory_mb=32.0 * len(ids),
            replicas=len(ids),
            replica_ids=ids,
        )
    )


def maintain(m: Model, f: str, node: str, a: int, b: int) -> None:
    kinds = (NodeCordoned, NodeUncordoned, NodeDrainRequested, NodeDrained)
    m.emit(kinds[b % len(kinds)](node=node))


ACTIONS = (
    deploy,
    patch_or_pin,
    delete_or_roll_back,
    decide,
    start,
    start,
    report,
    report,
    report,
    leave,
    node_life,
    beat,
    maintain,
)

histories = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000)),
    min_size=5,
    max_size=70,
)


def written(
    actions: list[tuple[int, int, int]], skews: list[float] | None = None
) -> list[Envelope]:
    model = Model(skews=skews or [])
    for action, a, b in actions:
        step(model, action, a, b)
    return model.events


def delivered(
    events: list[Envelope], picks: list[int], duplicates: list[tuple[int, int]]
) -> list[Envelope]:
    """An order Kafka may deliver in: each topic and key in order, interleaved as `picks`
    says, with some events delivered again, some time after they were first."""
    queues: dict[tuple[str, str], list[Envelope]] = defaultdict(list)
    for envelope in events:
        queues[(topic_of(type(envelope.data)).suffix, envelope.subject)].append(envelope)
    order: list[Envelope] = []
    keys = sorted(queues)
    turn = 0
    while keys:
        key = keys[picks[turn % len(picks)] % len(keys)] if picks else keys[0]
        turn += 1
        order.append(queues[key].pop(0))
        if not queues[key]:
            keys.remove(key)
    for at, which in duplicates:
        if order:
            first = which % len(order)
            later = first + 1 + at % (len(order) - first)
            order.insert(later, order[first])
    return order


def fold(events: list[Envelope]) -> World:
    world = World()
    for envelope in events:
        world.apply(envelope, 0.0)
    return world


def scaling(world: World) -> dict[str, Any]:
    """What the autoscaler relies on: desired, pinned and current revision, and what is ready."""
    return {
        "functions": {
            name: (view.revision, view.desired, view.pinned_replicas)
            for name, view in world.functions.functions.items()
            if not view.deleted
        },
        "ready": sorted(
            r.replica_id for r in world.replicas.live() if r.state is ReplicaState.READY
        ),
        "failures": snapshot(world)["failures"],
    }


def deep(world: World) -> dict[str, Any]:
    """A snapshot, plus what it leaves out that must agree too."""
    return {
        **snapshot(world),
        "generations": {n: (v.generation, v.lost_through) for n, v in world.nodes.nodes.items()},
        "ended": {r.replica_id: str(r.state) for r in world.replicas.replicas.values()},
        "leaving": sorted(r.replica_id for r in world.replicas.live() if r.leaving),
        "failed_since_ready": {
            f: (x.since_ready, x.last) for f, x in world.failures.functions.items()
        },
    }


deliveries = given(
    histories,
    st.lists(st.integers(0, 100), min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=6),
    st.lists(st.floats(-3, 3), max_size=7),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@deliveries
# a drift repair (which names no function) read before the start of the replica it ends,
# then the replica's late ready: the start now gives the replica its function
@example(
    actions=[(0, 0, 0), (0, 0, 0), (511, 0, 0), (386, 0, 0), (539, 0, 1)],
    picks=[16],
    duplicates=[],
    skews=[],
)
def test_any_delivery_order_builds_the_world_of_the_written_order(
    actions: list[tuple[int, int, int]],
    picks: list[int],
    duplicates: list[tuple[int, int]],
    skews: list[float],
) -> None:
    events = written(actions, skews)
    expected = deep(fold(events))
    order = delivered(events, picks, duplicates)
    assert deep(fold(order)) == expected
    assert deep(world_at(order, None)) == expected, "shoal replay sees the same world"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@deliveries
def test_every_service_builds_the_same_world_and_its_own_views_agree_with_it(
    actions: list[tuple[int, int, int]],
    picks: list[int],
    duplicates: list[tuple[int, int]],
    skews: list[float],
) -> None:
    """Each service reads only its own topics, and builds from them what it relies on."""
    events = written(actions, skews)
    expected = fold(events)
    order = delivered(events, picks, duplicates)
    clock = FakeClock()
    scheduler = Scheduler(SchedulerSettings.from_env({}), clock=clock)
    healer = Healer(HealerSettings.from_env({}), clock=clock)
    autoscaler = Autoscaler(AutoscalerSettings.from_env({}), clock=clock)
    api = ApiView(clock=clock)
    readers = ((scheduler, Scheduler.topics), (healer, Healer.topics), (api, Api.topics))
    for envelope in order:
        topic = topic_of(type(envelope.data))
        for service, topics in (*readers, (autoscaler, Autoscaler.topics)):
            if topic in topics:
                service.apply(envelope)
    for world in (scheduler.world, healer.world, api.world):
        assert deep(world) == deep(expected)
    assert scaling(autoscaler.world) == scaling(expected)
    ready = {
        (r.function, r.replica_id)
        for r in expected.replicas.live()
        if r.state is ReplicaState.READY and r.endpoint
    }
    routed = {(f, rid) for f, routes in api.routes.by_function.items() for rid in routes}
    assert routed == ready, "the api routes to exactly the ready replicas"
    for node, room in scheduler.rooms.rooms.items():
        live = expected.replicas.live_on(node)
        assert set(room.held) == {r.replica_id for r in live}, node
        assert abs(room.used_cpus - sum(r.cpu for r in live)) < 1e-9
