"""Rebuilding the whole cluster state from a long history: N events of a busy cluster
(deployments, scale decisions, replicas started, ready, drained and stopped on 200 nodes)
are written to the real broker; a fresh process then reads them all back and folds them
(as `shoal replay` and every service on start do). The fold alone over the same events in
memory is timed in this process, for the ratio."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.broker import kafka_bus
from events.bus import EventProducer, ensure_topics
from events.envelope import Envelope, new_envelope
from events.history import HISTORY_TOPICS, HistoryReader
from events.projections.snapshot import snapshot
from events.projections.world import World, settle
from events.settings import BusSettings
from events.types import (
    DrainReplica,
    FunctionDeployed,
    FunctionSpec,
    FunctionUpdated,
    NodeCapacity,
    NodeJoined,
    Payload,
    ReplicaDraining,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    ScaleDecision,
    StartReplica,
)

FUNCTIONS = 500
NODES = 200
START = datetime(2026, 11, 1, tzinfo=UTC)


def history(total: int) -> Iterator[Envelope]:
    """A deterministic busy history of about `total` events, in time order."""
    count = 0
    tick = 0

    def at(payload: Payload, source: str) -> Envelope:
        nonlocal count, tick
        count += 1
        tick += 1
        return new_envelope(payload, source=source, at=START + timedelta(milliseconds=tick))

    capacity = NodeCapacity(cpus=64, memory_mb=262144, max_replicas=500)
    for n in range(NODES):
        yield at(
            NodeJoined(node=f"node-{n}", address="10.0.0.1", runtime="docker", capacity=capacity),
            f"/shoal/node/node-{n}",
        )
    specs = {}
    for f in range(FUNCTIONS):
        name = f"fn-{f}"
        specs[name] = FunctionSpec(name=name, image=f"registry.local/{name}:1", cpu=0.25)
        yield at(FunctionDeployed(function=name, revision=1, spec=specs[name]), "/shoal/api/a")
    life = 0
    while count < total:
        name = f"fn-{life % FUNCTIONS}"
        node = f"node-{life % NODES}"
        rid = f"{name}-1-{life:08x}"
        replica: dict[str, Any] = {"function": name, "revision": 1, "replica_id": rid, "node": node}
        if life % 4 == 0:
            yield at(
                ScaleDecision(
                    function=name,
                    revision=1,
                    previous=life % 7,
                    desired=(life + 1) % 7,
                    panic=False,
                    reason="concurrency 12.0 over the 60 s window, target 10 per replica",
                    inputs={"stable": 12.0, "panic": 13.0},
                ),
                "/shoal/autoscaler/a",
            )
        if life % 997 == 0:
            yield at(FunctionUpdated(function=name, revision=1, spec=specs[name]), "/shoal/api/a")
        yield at(
            StartReplica(node=node, function=name, revision=1, replica_id=rid, spec=specs[name]),
            "/shoal/scheduler/a",
        )
        yield at(ReplicaStarting(**replica), f"/shoal/node/{node}")
        yield at(ReplicaReady(**replica, endpoint="http://10.0.0.1:30001"), f"/shoal/node/{node}")
        life += 1
        if life % 50 == 0:
            continue  # one replica in fifty still runs at the end
        yield at(
            DrainReplica(node=node, function=name, replica_id=rid, reason="scaled down"),
            "/shoal/scheduler/a",
        )
        yield at(ReplicaDraining(**replica), f"/shoal/node/{node}")
        yield at(ReplicaStopped(**replica, reason="drained"), f"/shoal/node/{node}")


async def write(bus: BusSettings, total: int) -> int:
    producer = EventProducer(bus, source="/shoal/bench/replay")
    await producer.start()
    written = 0
    try:
        pending = []
        for envelope in history(total):
            pending.append(await producer.send(envelope))
            written += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return written


def fold_only(total: int) -> tuple[float, int]:
    """Seconds the fold alone takes over the same history (generation not counted)."""
    world = World()
    spent = 0.0
    folded = 0
    chunk: list[Envelope] = []
    for envelope in history(total):
        chunk.append(envelope)
        if len(chunk) == 50_000:
            started = time.perf_counter()
            for e in chunk:
                world.apply(e, 0.0)
            settle()
            spent += time.perf_counter() - started
            folded += len(chunk)
            chunk = []
    started = time.perf_counter()
    for e in chunk:
        world.apply(e, 0.0)
    spent += time.perf_counter() - started
    return spent, folded + len(chunk)


async def rebuild(bus: BusSettings) -> dict[str, object]:
    """What a fresh process does: read the whole history from Kafka and fold it."""
    started = time.perf_counter()
    world = World()
    events = 0
    async for batch in HistoryReader(bus, topics=HISTORY_TOPICS).batches():
        for envelope in batch:
            world.apply(envelope, 0.0)
        settle()
        events += len(batch)
    seconds = time.perf_counter() - started
    summary = snapshot(world)
    return {
        "events": events,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "functions": len(summary["functions"]),
        "nodes": len(summary["nodes"]),
        "live_replicas": len(summary["replicas"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200,000 events, not 1,000,000")
    parser.add_argument("--rebuild", nargs=2, metavar=("BOOTSTRAP", "NAMESPACE"), help="internal")
    args = parser.parse_args()
    if args.rebuild:
        bus = BusSettings.from_env(
            {
                **os.environ,
                "SHOAL_KAFKA_BOOTSTRAP": args.rebuild[0],
                "SHOAL_KAFKA_NAMESPACE": args.rebuild[1],
            }
        )
        print(json.dumps(asyncio.run(rebuild(bus))))
        return
    total = 200_000 if args.quick else 1_000_000
    with kafka_bus() as base:
        bus = base.named(f"b{uuid.uuid4().hex[:8]}")
        asyncio.run(ensure_topics(bus))
        started = time.perf_counter()
        written = asyncio.run(write(bus, total))
        write_s = time.perf_counter() - started
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.replay",
                "--rebuild",
                bus.bootstrap_servers,
                bus.namespace,
            ],
            env={**os.environ, **bus.env()},
            capture_output=True,
            text=True,
            check=True,
        )
        rebuilt = json.loads(child.stdout.strip().splitlines()[-1])
    fold_s, folded = fold_only(total)
    per_million = float(rebuilt["seconds"]) / written * 1e6
    fold_per_million = fold_s / folded * 1e6
    print(f"{'step':<44} {'events':>10} {'seconds':>8} {'events/s':>10}")
    for step, events, seconds in (
        ("write to Kafka (setup)", written, write_s),
        ("read from Kafka + fold (fresh process)", rebuilt["events"], rebuilt["seconds"]),
        ("fold alone, in memory", folded, fold_s),
    ):
        rate = float(events) / float(seconds)
        print(f"{step:<44} {events:>10} {float(seconds):>8.2f} {rate:>10,.0f}")
    print(
        f"rebuilt: {rebuilt['functions']} functions, {rebuilt['nodes']} nodes, "
        f"{rebuilt['live_replicas']} live replicas; peak RSS {rebuilt['peak_rss_mb']:.0f} MB; "
        f"target: 1M events in under 20 s"
    )
    print(
        json.dumps(
            {
                "events": rebuilt["events"],
                "seconds": round(float(rebuilt["seconds"]), 3),
                "seconds_per_million": round(per_million, 3),
                "fold_only_seconds_per_million": round(fold_per_million, 3),
                "peak_rss_mb": round(float(rebuilt["peak_rss_mb"]), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
