"""Start command on Kafka -> ReplicaReady for a real container, vs the floor: `docker run`
plus first HTTP 200 done directly (the docker CLI), in the same run, samples interleaved.
Full mode also starts 500 replicas on one agent: how many run, and the agent's memory."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import docker

from bench.broker import kafka_bus
from events.bus import EventProducer, ensure_topics
from events.topics import REPLICAS
from events.types import (
    DrainReplica,
    FunctionSpec,
    ReplicaReady,
    ReplicaStarting,
    StartReplica,
    StopReplica,
)
from services.common.labels import LABEL_NODE
from services.local.images import ensure_test_images
from services.node_agent.docker_calls import ensure_replica_network
from services.node_agent.sandbox import REPLICA_NETWORK
from tests.support.event_log import EventLog
from tests.support.ports import free_port
from tests.support.service_process import AgentProcess

IMAGE = "shoal-test/hello:1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def first_200(http: aiohttp.ClientSession, url: str) -> None:
    while True:
        try:
            async with http.get(url) as reply:
                if reply.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.005)


def network_args(network: str, port: int) -> list[str]:
    """`docker run` options for a replica in a node-agent's network mode, on `port`."""
    if network == "host":
        return ["--network", "host", "-e", f"PORT={port}", "-e", "HOST=127.0.0.1"]
    ensure_replica_network(docker.from_env(), REPLICA_NETWORK, {})
    return [
        *("--network", REPLICA_NETWORK, "-p", f"127.0.0.1:{port}:8080"),
        *("-e", "PORT=8080", "-e", "HOST=0.0.0.0"),
    ]


async def floor_once(http: aiohttp.ClientSession, network: str = "bridge") -> float:
    """`docker run` of the image and its first 200, in the given network mode."""
    port, name = free_port(), f"shoal-bench-floor-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    await asyncio.to_thread(
        subprocess.run,
        ["docker", "run", "-d", "--name", name, *network_args(network, port), IMAGE],
        check=True,
        capture_output=True,
    )
    await first_200(http, f"http://127.0.0.1:{port}/")
    elapsed = time.perf_counter() - started
    await asyncio.to_thread(subprocess.run, ["docker", "rm", "-f", name], capture_output=True)
    return elapsed * 1000


def spec() -> FunctionSpec:
    return FunctionSpec(name="bench", image=IMAGE, cpu=0.1, memory_mb=16)


async def agent_once(
    node: str, producer: EventProducer, log: EventLog, stages: dict[str, list[float]]
) -> float:
    replica = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    command = await producer.publish(
        StartReplica(node=node, function="bench", revision=1, replica_id=replica, spec=spec())
    )
    await log.wait_for(ReplicaReady, lambda e: e.replica_id == replica, timeout_s=60)
    elapsed = time.perf_counter() - started
    observed = datetime.now(UTC)
    times = {
        type(e.data): e.time for e in log.events if getattr(e.data, "replica_id", "") == replica
    }
    stages["command -> agent starts it"].append(ms(times[ReplicaStarting] - command.time))
    stages["container start + probe"].append(ms(times[ReplicaReady] - times[ReplicaStarting]))
    stages["ready -> observed"].append(ms(observed - times[ReplicaReady]))
    await producer.publish(StopReplica(node=node, function="bench", replica_id=replica))
    return elapsed * 1000


def ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def many(
    node: str, producer: EventProducer, log: EventLog, agent: AgentProcess, count: int
) -> tuple[int, float, float]:
    started = time.perf_counter()
    ids = [f"many-{n:04d}" for n in range(count)]
    for replica in ids:
        await producer.publish(
            StartReplica(
                node=node,
                function="many",
                revision=1,
                replica_id=replica,
                spec=spec(),
                ready_timeout_s=600,
            )
        )
    wanted = set(ids)
    try:
        await log.wait_for(
            ReplicaReady, lambda e: e.replica_id in wanted, count=count, timeout_s=900
        )
    except AssertionError:
        pass
    took = time.perf_counter() - started
    running = len(log.of(ReplicaReady, lambda e: e.replica_id in wanted))
    assert agent.process is not None
    memory = rss_mb(agent.process.pid)
    for replica in ids:
        await producer.publish(
            DrainReplica(node=node, function="many", replica_id=replica, drain_s=0)
        )
    return running, memory, took


async def measure(samples: int, replicas_for_memory: int | None) -> dict[str, float | int | None]:
    client = docker.from_env()
    ensure_test_images(client)
    with kafka_bus() as base, tempfile.TemporaryDirectory() as logs:
        bus = base.named(f"b{uuid.uuid4().hex[:8]}")
        await ensure_topics(bus)
        agent = AgentProcess(
            bus,
            log_dir=Path(logs),
            SHOAL_NODE_PORT_FIRST="20000",
            SHOAL_NODE_PORT_LAST="20999",
            SHOAL_NODE_MAX_REPLICAS="1000",
        )
        await agent.start()
        producer = EventProducer(bus, source="/shoal/bench/scheduler")
        await producer.start()
        floors: list[float] = []
        agents: list[float] = []
        running = memory = took = None
        stages: dict[str, list[float]] = defaultdict(list)
        try:
            async with EventLog(bus, [REPLICAS]) as log, aiohttp.ClientSession() as http:
                await floor_once(http)
                await agent_once(agent.node_id, producer, log, defaultdict(list))
                for _ in range(samples):
                    floors.append(await floor_once(http))
                    agents.append(await agent_once(agent.node_id, producer, log, stages))
                if replicas_for_memory:
                    running, memory, took = await many(
                        agent.node_id, producer, log, agent, replicas_for_memory
                    )
        finally:
            await producer.stop()
            await agent.stop()
            for container in client.containers.list(
                all=True, filters={"label": f"{LABEL_NODE}={agent.node_id}"}
            ):
                container.remove(force=True)
    floor50, agent50 = statistics.median(floors), statistics.median(agents)
    print(f"{'path':<28} {'n':>4} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        f"{'floor: docker run + 200':<28} {samples:>4} {floor50:>8.1f} "
        f"{percentile(floors, 0.99):>8.1f}"
    )
    print(
        f"{'agent: command -> ready':<28} {samples:>4} {agent50:>8.1f} "
        f"{percentile(agents, 0.99):>8.1f}"
    )
    for stage, values in stages.items():
        print(
            f"  {stage:<26} {len(values):>4} {statistics.median(values):>8.1f} "
            f"{percentile(values, 0.99):>8.1f}"
        )
    print(
        f"added by the agent at p50: {agent50 - floor50:.1f} ms (target < 50 ms); "
        f"ratio {agent50 / floor50:.2f}"
    )
    if replicas_for_memory:
        print(
            f"{replicas_for_memory} replicas asked of one agent: {running} ready in "
            f"{took:.0f} s; agent RSS {memory:.0f} MB"
        )
    return {
        "floor_ms_p50": round(floor50, 1),
        "floor_ms_p99": round(percentile(floors, 0.99), 1),
        "agent_ms_p50": round(agent50, 1),
        "agent_ms_p99": round(percentile(agents, 0.99), 1),
        "added_ms_p50": round(agent50 - floor50, 1),
        "ratio_p50": round(agent50 / floor50, 3),
        "replicas_running_at_500": running,
        "agent_rss_mb_at_500": round(memory, 1) if memory is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 samples, no 500-replica run")
    args = parser.parse_args()
    result = asyncio.run(measure(10 if args.quick else 50, None if args.quick else 500))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
