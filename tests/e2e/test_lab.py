"""The lab (`shoal lab`): 3 hosts and 3 Kafka brokers, each in a network namespace of its
own with its own address, the hosts with their own Docker Engine and node-agent, on the
authenticated bus with replication factor 3 and min.insync.replicas 2. A function served
from hosts 2 and 3 answers every call made through the api on host 1; a broker killed
under load and during a deploy loses no acknowledged event and stops nothing; a host
cut off is lost within its node timeout and has its replicas replaced elsewhere with no
failed call, and once healed runs none of the replicas that moved away; killing the host
of the leading scheduler hands the lead to the other host's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from events.bus import EventProducer
from events.history import read_all
from events.settings import BusSettings
from events.topics import DEMAND, NODES, partition_for
from events.types import NodeLost
from services.common.labels import LABEL_REPLICA
from services.local.lab import Lab, saved_test_images
from services.local.lab_net import LabPlan
from tests.support.invariants import assert_log_holds
from tests.support.lab_calls import (
    PROBE,
    api,
    control,
    lab_ready,
    leading,
    produce_acked,
    ready_on,
    until,
    when,
)
from tests.support.load import steady_load

pytestmark = [pytest.mark.kafka, pytest.mark.docker]
PLAN = LabPlan(3, 3, tag="tlab", subnet="10.234.0")
HEARTBEAT_AND_TICK_S = 2.0
"""A node is lost `timeout_s` after its last heartbeat (every 1 s), at the healer's next
tick (every 0.25 s): from the cut, within the timeout and this."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Lab]:
    built = Lab(tmp_path_factory.mktemp("lab"), PLAN)
    try:
        built.up(images=saved_test_images(docker_client))
        yield built
    finally:
        built.down()


@pytest.fixture
async def bus(lab: Lab) -> BusSettings:
    return BusSettings(bootstrap_servers=PLAN.bootstrap, connect_timeout_s=60.0).signed_in(
        lab.credentials / "admin.credentials"
    )


async def test_calls_through_the_api_on_one_host_reach_replicas_on_the_others(lab: Lab) -> None:
    first = lab.plan.host(1).name
    await lab_ready(lab)
    await control(lab, "POST", f"/nodes/{first}/cordon", expect=202)
    spec = {"name": "spread", "image": "shoal-test/hello:1", "min_replicas": 2}
    await control(lab, "POST", "/functions", {**spec, "cpu": 0.1, "memory_mb": 32}, 201)
    others = sorted(lab.plan.host(i).name for i in (2, 3))
    nodes = await until(lambda: when(ready_on(lab, "spread"), lambda n: len(n) == 2), 90, "2 ready")
    assert nodes == others, nodes
    async with steady_load(f"{api(lab)}/fn/spread/") as load:
        await asyncio.sleep(5)
    load.assert_no_failures()
    assert load.total > 50


async def test_a_broker_killed_under_load_loses_no_acknowledged_event(
    lab: Lab, bus: BusSettings
) -> None:
    producer = EventProducer(bus, source="/shoal/test/lab")
    await producer.start()
    acked: list[str] = []
    victim = await leader_of(bus, DEMAND.name(bus.namespace), PROBE)  # the probe's events' broker
    try:
        async with steady_load(f"{api(lab)}/fn/spread/") as load:
            sending = asyncio.create_task(produce_acked(producer, acked, seconds=12, at_least=40))
            await asyncio.sleep(2)
            spec = {"image": "shoal-test/hello:1", "min_replicas": 2, "env": {"V": "2"}}
            await control(lab, "PUT", "/functions/spread", {"name": "spread", **spec}, 200)
            await asyncio.to_thread(lab.kill, f"b{victim}")  # the rollout under way
            await until(lambda: rolled_to(lab, "spread", 2), 60, "the deploy completes")
            await sending
        load.assert_no_failures()
    finally:
        await producer.stop()
    read = {e.id for e in await read_all(bus, [DEMAND]) if e.source == "/shoal/test/lab"}
    assert len(acked) >= 40
    assert not set(acked) - read, f"{len(set(acked) - read)} acknowledged events lost"
    await asyncio.to_thread(lab.start, f"b{victim}", {})
    await until(lambda: in_sync_everywhere(bus, broker=victim), 60, "back in every ISR")
    await assert_log_holds(bus, grace_s=5)


async def rolled_to(lab: Lab, name: str, revision: int) -> bool:
    """Every ready replica, two of them, of `revision`."""
    status = await control(lab, "GET", f"/functions/{name}")
    ready = [r for r in status["replicas"] if r["state"] == "ready"]
    return len(ready) == 2 and all(r["revision"] == revision for r in ready)


async def described(bus: BusSettings, topics: list[str] | None = None) -> list[Any]:
    """Kafka's description of some topics (all without a list): partitions, leaders, ISRs."""
    admin = AIOKafkaAdminClient(**bus.client_kwargs())
    await admin.start()
    try:
        return list(await admin.describe_topics(topics))
    finally:
        await admin.close()


async def leader_of(bus: BusSettings, topic: str, key: str) -> int:
    """The broker that leads the partition of a topic that a key goes to."""
    (found,) = await described(bus, [topic])
    partitions = {p["partition"]: p["leader"] for p in found["partitions"]}
    return int(partitions[partition_for(key, len(partitions))])


async def in_sync_everywhere(bus: BusSettings, *, broker: int) -> bool:
    """Whether the broker is in the in-sync replicas of every partition it holds."""
    topics = await described(bus)
    held = [p for t in topics for p in t["partitions"] if broker in p["replicas"]]
    return bool(held) and all(broker in p["isr"] for p in held)


async def test_a_host_cut_off_is_replaced_and_stops_what_moved_when_healed(
    lab: Lab, bus: BusSettings
) -> None:
    cut = lab.plan.host(2).name
    await control(lab, "POST", f"/nodes/{lab.plan.host(1).name}/uncordon", expect=202)
    status = await control(lab, "GET", "/functions/spread")
    moved = {r["id"] for r in status["replicas"] if r["node"] == cut}
    assert moved, status["replicas"]
    async with steady_load(f"{api(lab)}/fn/spread/") as load:
        await asyncio.to_thread(lab.cut, "h2", off=True)
        cut_at, cut_wall = time.monotonic(), datetime.now(UTC)
        await until(
            lambda: when(ready_on(lab, "spread"), lambda n: len(n) == 2 and cut not in n),
            30,
            "the cut host's replica ready elsewhere",
        )
        replaced_s = time.monotonic() - cut_at
        await asyncio.to_thread(lab.cut, "h2", off=False)
        await asyncio.sleep(8)  # the host heartbeats again and stops what moved away
    load.assert_no_failures()
    assert replaced_s < 15, replaced_s
    losses = [
        (e.time, e.data)
        for e in await read_all(bus, [NODES])
        if isinstance(e.data, NodeLost) and e.data.node == cut and e.time and e.time > cut_wall
    ]
    assert losses, f"no NodeLost of {cut}"
    lost_at, lost = min(losses, key=lambda found: found[0])
    lost_s = (lost_at - cut_wall).total_seconds()
    assert lost_s <= lost.timeout_s + HEARTBEAT_AND_TICK_S, f"NodeLost after {lost_s:.1f} s"
    nodes = await control(lab, "GET", "/nodes")
    back = next(n for n in nodes["nodes"] if n["node"] == cut)
    assert not back["lost"], back
    engine = lab.engine(2).client()
    try:
        still = [c.labels.get(LABEL_REPLICA) for c in engine.containers.list()]
    finally:
        engine.close()
    assert not moved & set(still), f"{moved & set(still)} run on {cut} and elsewhere"
    await assert_log_holds(bus, grace_s=5)


async def test_killing_the_host_of_the_leading_scheduler_hands_the_lead_on(lab: Lab) -> None:
    hosts = [lab.plan.host(1), lab.plan.host(2)]
    # A scheduler cut off earlier believes it leads until its heartbeats fail (about 30 s,
    # aiokafka's way); what it sends meanwhile is fenced. Wait until one alone leads.
    leader = await until(lambda: leading(hosts), 90, "one scheduler leads")
    survivor = hosts[1] if leader is hosts[0] else hosts[0]
    killed = time.monotonic()
    await asyncio.to_thread(lab.kill, leader.name)
    assert await until(lambda: leading([survivor]), 10, "the other host's scheduler leads")
    took = time.monotonic() - killed
    assert took < 5, f"the other host's scheduler led after {took:.1f} s"
    await asyncio.to_thread(lab.start, leader.name, {})  # its engine kept its images
