"""The lab (`shoal lab`, 3 hosts and 3 brokers, each in a network namespace of its own) under
faults: a host cut off from the network (its replicas ready elsewhere: p50 and max over
the rounds), a broker SIGKILLed while a producer sends one event at a time and a
function's minimum changes every second (the control plane's pause: the slowest change
from its request to the autoscaler's decision on the log, against the same before the
kill; the longest wait for an acknowledgement, and how many acknowledged events were not
read back), and
events per second through the bus with acks=all on a topic of replication factor 3
against one of replication factor 1, from the same run. `--quick`: one round of each."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import docker
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from events.bus import EventProducer
from events.history import read_all
from events.settings import BusSettings
from events.topics import DEMAND, SCALE
from events.types import ScaleDecision
from services.local.lab import Lab, saved_test_images
from services.local.lab_net import LabPlan
from tests.support.event_log import EventLog
from tests.support.lab_calls import control, lab_ready, produce_acked, ready_on, until, when

PLAN = LabPlan(3, 3, tag="blab", subnet="10.235.0")
RATE_EVENTS = 20000


async def node_loss(lab: Lab, rounds: int) -> list[float]:
    """Cut off a host (2 or 3: host 1 runs the api) that runs a replica; seconds until the
    function has 2 ready replicas elsewhere."""
    took = []
    for _ in range(rounds):
        nodes = await until(
            lambda: when(ready_on(lab, "spread"), lambda n: len(n) == 2), 90, "2 ready"
        )
        index = next(i for i in (2, 3) if lab.plan.host(i).name in nodes)
        cut = lab.plan.host(index).name
        await asyncio.to_thread(lab.cut, f"h{index}", off=True)
        started = time.monotonic()
        await until(partial(replaced, lab, cut), 60, "replaced")
        took.append(time.monotonic() - started)
        await asyncio.to_thread(lab.cut, f"h{index}", off=False)
        await asyncio.sleep(5)
    return took


async def replaced(lab: Lab, cut: str) -> list[str] | None:
    """The nodes of the function's 2 ready replicas once none is on the cut host."""
    nodes: list[str] | None = await when(
        ready_on(lab, "spread"), lambda n: len(n) == 2 and cut not in n
    )
    return nodes


async def broker_loss(lab: Lab, bus: BusSettings, rounds: int) -> dict[str, Any]:
    """SIGKILL a broker while events are sent one at a time and a function's minimum flips
    every second: the longest ack wait, acked ids not read back, and the seconds from
    each flip to the autoscaler's decision on the log (before the kill, and around it)."""
    producer = EventProducer(bus, source="/shoal/bench/cluster")
    await producer.start()
    acked: list[str] = []
    longest, before, around = 0.0, [], []
    try:
        async with EventLog(bus, [SCALE]) as log:
            await log.wait_for(ScaleDecision, pulse)
            for n in range(rounds):
                victim = f"b{n % lab.plan.brokers + 1}"
                sending = asyncio.create_task(produce_acked(producer, acked, seconds=10))
                before += await decision_times(lab, log, seconds=2)
                flips = asyncio.create_task(decision_times(lab, log, seconds=10))
                await asyncio.to_thread(lab.kill, victim)
                around += await flips
                longest = max(longest, await sending)
                await asyncio.to_thread(lab.start, victim, {})
    finally:
        await producer.stop()
    read = {e.id for e in await read_all(bus, [DEMAND]) if e.source == "/shoal/bench/cluster"}
    lost = len(set(acked) - read)
    return {"ack_wait": longest, "lost": lost, "decision_before": before, "decision": around}


async def decision_times(lab: Lab, log: EventLog, seconds: float) -> list[float]:
    """Every second for `seconds`, the minimum of "pulse" flipped between 1 and 2; per flip,
    the seconds from its request to the autoscaler's decision for it (by the log's times)."""
    took = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        target = 2 if log.of(ScaleDecision, pulse)[-1].desired == 1 else 1
        asked = datetime.now(UTC)
        await control(lab, "PATCH", "/functions/pulse", {"min_replicas": target})
        decided = await until(partial(decision_of, log, target, asked), 60, "decided")
        took.append((decided - asked).total_seconds())
        await asyncio.sleep(max(0.0, 1.0 - took[-1]))
    return took


def pulse(decision: ScaleDecision) -> bool:
    return decision.function == "pulse"


async def decision_of(log: EventLog, desired: int, after: datetime) -> datetime | None:
    """When the first decision for "pulse" of `desired` after a time was made."""
    for event in log.events:
        data = event.data
        if isinstance(data, ScaleDecision) and pulse(data) and data.desired == desired:
            if event.time is not None and event.time > after:
                return event.time
    return None


async def rate(bus: BusSettings, replication: int) -> float:
    """Events per second, acks=all, to a new topic of this replication factor."""
    topic = f"bench-rate-{replication}-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(**bus.client_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, replication)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**bus.producer_kwargs())
    await producer.start()
    try:
        started = time.monotonic()
        sent = [await producer.send(topic, b"x" * 200) for _ in range(RATE_EVENTS)]
        await asyncio.gather(*sent)
        return RATE_EVENTS / (time.monotonic() - started)
    finally:
        await producer.stop()


async def run(rounds: int, home: Path) -> dict[str, Any]:
    lab = Lab(home, PLAN)
    images = await asyncio.to_thread(saved_test_images, docker.from_env())
    await asyncio.to_thread(lab.up, images=images)
    try:
        bus = BusSettings(bootstrap_servers=PLAN.bootstrap, connect_timeout_s=60.0).signed_in(
            lab.credentials / "admin.credentials"
        )
        await lab_ready(lab)
        await control(lab, "POST", f"/nodes/{PLAN.host(1).name}/cordon", expect=202)
        spec = {"name": "spread", "image": "shoal-test/hello:1", "min_replicas": 2}
        await control(lab, "POST", "/functions", {**spec, "cpu": 0.1, "memory_mb": 32}, 201)
        await control(lab, "POST", f"/nodes/{PLAN.host(1).name}/uncordon", expect=202)
        losses = await node_loss(lab, rounds)
        pulse = {"name": "pulse", "image": "shoal-test/hello:1", "cpu": 0.1, "memory_mb": 32}
        await control(lab, "POST", "/functions", {**pulse, "min_replicas": 1}, 201)
        brokers = await broker_loss(lab, bus, rounds)
        rates = {n: await rate(bus, n) for n in (1, 3)}
    finally:
        await asyncio.to_thread(lab.down)
    return {"node_loss": losses, "rates": rates, **brokers}


def report(found: dict[str, Any]) -> None:
    losses = found["node_loss"]
    print(f"{'what':<38} {'value':>10}")
    print(f"{'node loss -> ready elsewhere p50 (s)':<38} {statistics.median(losses):>10.2f}")
    print(f"{'node loss -> ready elsewhere max (s)':<38} {max(losses):>10.2f}")
    before, around = found["decision_before"], found["decision"]
    print(f"{'decision after a change, p50 (s)':<38} {statistics.median(before):>10.2f}")
    print(f"{'broker loss: slowest decision (s)':<38} {max(around):>10.2f}")
    print(f"{'broker loss: longest ack wait (s)':<38} {found['ack_wait']:>10.2f}")
    print(f"{'acknowledged events not read back':<38} {found['lost']:>10}")
    print(f"{'events/s, replication 1 (baseline)':<38} {found['rates'][1]:>10.0f}")
    print(f"{'events/s, replication 3':<38} {found['rates'][3]:>10.0f}")
    print(
        json.dumps(
            {
                "node_loss_ready_s_p50": round(statistics.median(losses), 3),
                "node_loss_ready_s_max": round(max(losses), 3),
                "broker_loss_pause_s": round(max(around), 3),
                "decision_s_p50_baseline": round(statistics.median(before), 3),
                "broker_loss_ack_wait_s": round(found["ack_wait"], 3),
                "acked_lost": found["lost"],
                "events_per_s_rf1": round(found["rates"][1]),
                "events_per_s_rf3": round(found["rates"][3]),
                "rounds": len(losses),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round of each fault")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-lab-") as home:
        report(asyncio.run(run(1 if args.quick else 3, Path(home))))


if __name__ == "__main__":
    main()
