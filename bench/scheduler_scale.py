"""The scheduler at cluster scale: hollow nodes (the node-agent's sim runtime, all in one
process) and many functions, through the real Kafka broker. Measures placements per
second, time until every replica is ready, and the scheduler's memory; then the pure
placement function alone on the same cluster shape, for comparison."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.broker import kafka_bus
from bench.node_start import rss_mb
from events.bus import EventProducer, ensure_topics
from events.consumer import LiveConsumer, from_beginning
from events.envelope import Envelope
from events.topics import NODE_COMMANDS, NODE_STATUS, REPLICAS
from events.types import FunctionDeployed, FunctionSpec, ScaleDecision
from services.scheduler.placement import NodeRoom, Placer
from tests.support.service_process import AgentProcess, ServiceProcess

NODE_CPUS, NODE_MEMORY_MB, NODE_SLOTS = 64, 262_144, 110
SPEC_CPU, SPEC_MEMORY_MB = 0.1, 64


class Tally:
    """Counts events by type as they arrive, with the time of the last of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.last_at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def count(self, envelope: Envelope) -> None:
        kind = type(envelope.data).__name__
        self.counts[kind] += 1
        self.last_at[kind] = time.monotonic()
        self.changed.set()

    async def until(self, kind: str, count: int, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while self.counts[kind] < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.counts[kind]} of {count} {kind} in {timeout_s} s")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1)
            except TimeoutError:
                pass
        return self.last_at[kind]


def pure_placement(nodes: int, replicas: int, functions: int) -> float:
    rooms = [
        NodeRoom(
            node=f"n{i}",
            cpus=NODE_CPUS,
            memory_mb=NODE_MEMORY_MB,
            max_replicas=NODE_SLOTS,
            schedulable=True,
        )
        for i in range(nodes)
    ]
    placer = Placer()
    started = time.perf_counter()
    for n in range(replicas):
        chosen = placer.place(
            rooms, f"fn-{n % functions}", SPEC_CPU, SPEC_MEMORY_MB, replica_id=f"r{n}"
        )
        assert not isinstance(chosen, str), chosen
    return replicas / (time.perf_counter() - started)


async def measure(nodes: int, replicas: int, functions: int) -> dict[str, object]:
    per_function = replicas // functions
    with kafka_bus() as base, tempfile.TemporaryDirectory() as logs:
        bus = base.named(f"b{uuid.uuid4().hex[:8]}")
        await ensure_topics(bus)
        producer = EventProducer(bus, source="/shoal/bench/autoscaler")
        await producer.start()
        tally = Tally()
        stop = asyncio.Event()
        counter = LiveConsumer(
            bus,
            name="tally",
            topics=[NODE_STATUS, NODE_COMMANDS, REPLICAS],
            handler=tally.count,
            dead_letters=producer,
            start_at=await from_beginning(bus, [NODE_STATUS, NODE_COMMANDS, REPLICAS]),
            max_batch=10_000,
        )
        counting = asyncio.create_task(counter.run(stop))
        hollow = AgentProcess(
            bus,
            log_dir=Path(logs),
            node_id="hollow",
            SHOAL_NODE_RUNTIME="sim",
            SHOAL_NODE_HOLLOW_NODES=str(nodes),
            SHOAL_NODE_HEARTBEAT_S="5",
            SHOAL_NODE_CPUS=str(NODE_CPUS),
            SHOAL_NODE_MEMORY_MB=str(NODE_MEMORY_MB),
            SHOAL_NODE_MAX_REPLICAS=str(NODE_SLOTS),
            SHOAL_NODE_SIM_READY_DELAY_S="0.05",
            SHOAL_NODE_STATS_S="3600",
            SHOAL_LOG_LEVEL="WARNING",
        )
        scheduler = ServiceProcess(
            bus,
            module="scheduler",
            port_variable="SHOAL_SCHEDULER_HTTP_PORT",
            log_dir=Path(logs),
            name="scheduler",
            SHOAL_SCHEDULER_HEARTBEAT_STALE_S="60",
            SHOAL_LOG_LEVEL="WARNING",
        )
        try:
            await hollow.start(timeout_s=300)
            await tally.until("NodeJoined", nodes, 300)
            await scheduler.start(timeout_s=300)
            spec = FunctionSpec(name="x", image="sim", cpu=SPEC_CPU, memory_mb=SPEC_MEMORY_MB)
            started = time.monotonic()
            for n in range(functions):
                name = f"fn-{n:04d}"
                await producer.publish(
                    FunctionDeployed(
                        function=name,
                        revision=1,
                        spec=FunctionSpec(
                            **{
                                **{f: getattr(spec, f) for f in spec.__struct_fields__},
                                "name": name,
                            }
                        ),
                    )
                )
                await producer.publish(
                    ScaleDecision(
                        function=name,
                        revision=1,
                        previous=0,
                        desired=per_function,
                        panic=False,
                        reason="benchmark",
                    )
                )
            placed_at = await tally.until("StartReplica", functions * per_function, 1800)
            ready_at = await tally.until("ReplicaReady", functions * per_function, 1800)
            assert scheduler.process is not None
            memory = rss_mb(scheduler.process.pid)
        finally:
            await scheduler.stop()
            await hollow.stop()
            stop.set()
            await counting
            await producer.stop()
    total = functions * per_function
    placements = total / (placed_at - started)
    pure = pure_placement(nodes, total, functions)
    print(f"{'what':<40} {'value':>12}")
    for label, value in [
        ("hollow nodes", nodes),
        ("functions", functions),
        ("replicas", total),
        ("placements per second through Kafka", round(placements)),
        ("seconds until all placed", round(placed_at - started, 1)),
        ("seconds until all ready", round(ready_at - started, 1)),
        ("scheduler RSS MB", round(memory)),
        ("pure placement per second (same cluster)", round(pure)),
    ]:
        print(f"{label:<40} {value:>12}")
    print("target: at least 1,000 placements per second through Kafka")
    return {
        "nodes": nodes,
        "replicas": total,
        "functions": functions,
        "placements_per_s": round(placements, 1),
        "all_placed_s": round(placed_at - started, 2),
        "all_ready_s": round(ready_at - started, 2),
        "scheduler_rss_mb": round(memory, 1),
        "pure_placements_per_s": round(pure, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="500 nodes and 15,000 replicas instead of 5,000 and 150,000",
    )
    args = parser.parse_args()
    shape = (500, 15_000, 50) if args.quick else (5000, 150_000, 150)
    result = asyncio.run(measure(*shape))
    result["quick"] = args.quick
    print(json.dumps(result))


if __name__ == "__main__":
    main()
