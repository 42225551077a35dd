"""Time to recover, on real Kafka and Docker with the whole platform as processes:

- node loss: a node-agent and its containers SIGKILLed -> every replica it ran ready on
  another node (detection by the healer's heartbeat timeout, then re-placement);
- crash: one replica's container `docker kill`ed -> its replacement ready.

Kubernetes' defaults are printed alongside for scale: a lost node is noticed after the
40 s node-monitor grace period and its pods are evicted after the 300 s not-ready/
unreachable toleration; a crashed container is restarted in place by the kubelet."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import docker

from bench.broker import kafka_bus
from bench.node_start import percentile
from events.bus import ensure_topics
from events.settings import BusSettings
from events.topics import REPLICAS
from events.types import ReplicaReady
from services.common.labels import LABEL_FUNCTION, LABEL_NODE
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.platform import AUTH, Platform, running_platform
from tests.support.service_process import AgentProcess

K8S_NODE_LOSS_S = 40 + 300
NODE_TIMEOUT_S = 3.0
REPLICAS_PER_FUNCTION = 2


async def ready_where(http: aiohttp.ClientSession, api: str, name: str) -> dict[str, int]:
    async with http.get(f"{api}/v1/functions/{name}", headers=AUTH) as reply:
        status = await reply.json()
    nodes: dict[str, int] = {}
    for replica in status["replicas"]:
        if replica["state"] == "ready":
            nodes[replica["node"]] = nodes.get(replica["node"], 0) + 1
    return nodes


async def deploy_held(http: aiohttp.ClientSession, api: str, name: str) -> None:
    """A function held at REPLICAS_PER_FUNCTION replicas."""
    spec = {
        "name": name,
        "image": "shoal-test/hello:1",
        "min_replicas": REPLICAS_PER_FUNCTION,
        "max_replicas": REPLICAS_PER_FUNCTION,
        "initial_scale": REPLICAS_PER_FUNCTION,
        "cpu": 0.1,
        "memory_mb": 32,
    }
    async with http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply:
        assert reply.status == 201, await reply.text()


async def until(check: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not recovered within {timeout_s} s")
        await asyncio.sleep(0.05)


async def node_loss_trials(
    platform: Platform, http: aiohttp.ClientSession, client: Any, bus: BusSettings, trials: int
) -> list[float]:
    """Each trial kills the nodes holding the function and times its move to fresh ones.
    Two fresh nodes join per trial, so the victims are never more than half of the live
    nodes: when most nodes go silent at once the healer, like Kubernetes' node controller,
    suspects a disruption and declares no node lost."""
    api = platform.api.url
    await deploy_held(http, api, "moving")
    dead: set[str] = set()

    async def all_ready_on_live_nodes() -> bool:
        where = await ready_where(http, api, "moving")
        return sum(where.values()) == REPLICAS_PER_FUNCTION and not dead & set(where)

    await until(all_ready_on_live_nodes)
    log_dir = platform.api.log_path.parent
    agents = list(platform.agents)
    times = []
    try:
        for _ in range(trials):
            holders = await ready_where(http, api, "moving")
            for _ in range(2):
                fresh = AgentProcess(
                    bus, log_dir=log_dir, SHOAL_NODE_CPUS="2", SHOAL_NODE_MEMORY_MB="4096"
                )
                await fresh.start()
                agents.append(fresh)
            await asyncio.sleep(1.5)
            victims = [a for a in agents if a.node_id in holders]
            started = time.monotonic()
            for victim in victims:
                await victim.kill()
                remove_node_containers(client, victim.node_id)
            dead.update(v.node_id for v in victims)
            await until(all_ready_on_live_nodes)
            times.append(time.monotonic() - started)
    finally:
        for agent in agents[len(platform.agents) :]:
            await agent.stop()
            remove_node_containers(client, agent.node_id)
    return times


def remove_node_containers(client: Any, node: str) -> None:
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
        container.remove(force=True)


async def crash_trials(
    platform: Platform, http: aiohttp.ClientSession, client: Any, bus: BusSettings, trials: int
) -> list[float]:
    times = []
    async with EventLog(bus, [REPLICAS]) as log:
        await deploy_held(http, platform.api.url, "crashy")
        await log.wait_for(
            ReplicaReady, lambda r: r.function == "crashy", count=REPLICAS_PER_FUNCTION
        )
        for _ in range(trials):
            # Apart by more than the scheduler's crash-loop back-off window.
            await asyncio.sleep(2.5)
            before = len(log.of(ReplicaReady, lambda r: r.function == "crashy"))
            (container, *_) = client.containers.list(filters={"label": f"{LABEL_FUNCTION}=crashy"})
            started = time.monotonic()
            container.kill()
            await log.wait_for(
                ReplicaReady, lambda r: r.function == "crashy", count=before + 1, timeout_s=60
            )
            times.append(time.monotonic() - started)
    return times


async def measure(trials: int) -> dict[str, object]:
    client = docker.from_env()
    ensure_test_images(client)
    with kafka_bus() as base, tempfile.TemporaryDirectory() as logs:
        bus = base.named(f"b{uuid.uuid4().hex[:8]}")
        await ensure_topics(bus)
        async with (
            running_platform(
                bus,
                Path(logs),
                client,
                agents=2,
                SHOAL_LOG_LEVEL="WARNING",
                SHOAL_HEALER_NODE_TIMEOUT_S=str(NODE_TIMEOUT_S),
            ) as platform,
            aiohttp.ClientSession() as http,
        ):
            crashes = await crash_trials(platform, http, client, bus, trials)
            losses = await node_loss_trials(platform, http, client, bus, trials)
    rows = [
        ("crash -> replacement ready", crashes, "restart in place (kubelet), then back-off"),
        (
            "node loss -> replicas ready elsewhere",
            losses,
            f"~{K8S_NODE_LOSS_S} s (40 s grace + 300 s eviction)",
        ),
    ]
    print(f"{'recovery':<40} {'p50 s':>7} {'p99 s':>7} {'max s':>7}  kubernetes defaults")
    for name, values, k8s in rows:
        print(
            f"{name:<40} {statistics.median(values):>7.2f} {percentile(values, 99):>7.2f} "
            f"{max(values):>7.2f}  {k8s}"
        )
    print(
        f"{trials} trials each; node timeout {NODE_TIMEOUT_S:g} s; "
        f"{REPLICAS_PER_FUNCTION} replicas per function"
    )
    return {
        "node_loss_ready_s_p50": round(statistics.median(losses), 3),
        "node_loss_ready_s_max": round(max(losses), 3),
        "crash_ready_s_p50": round(statistics.median(crashes), 3),
        "crash_ready_s_max": round(max(crashes), 3),
        "node_timeout_s": NODE_TIMEOUT_S,
        "k8s_node_loss_s": K8S_NODE_LOSS_S,
        "trials": trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 trials each instead of 9")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(3 if args.quick else 9))))


if __name__ == "__main__":
    main()
