"""Outages of what Shoal stands on: the broker killed under load, and a node-agent paused
while its node is declared lost. Nothing fails that need not, nothing runs twice, and
every service carries on without being restarted."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.settings import BusSettings
from events.topics import FUNCTIONS, NODE_COMMANDS, NODES, REPLICAS, SCALE
from events.types import NodeLost, ReplicaReady, ReplicaStarting, StartReplica
from services.common.labels import LABEL_FUNCTION
from services.local.images import ensure_test_images
from services.local.kafka_broker import LocalKafkaBroker
from tests.support.event_log import EventLog
from tests.support.load import steady_load
from tests.support.platform import AUTH, Platform, running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

NODE_TIMEOUT_S = 3.0


def two_agents(bus: BusSettings, tmp_path: Path, docker_client: Any) -> Any:
    ensure_test_images(docker_client)
    return running_platform(
        bus,
        tmp_path,
        docker_client,
        agents=2,
        SHOAL_HEALER_NODE_TIMEOUT_S=str(NODE_TIMEOUT_S),
        SHOAL_KAFKA_CONNECT_TIMEOUT_S="20",
    )


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    async with two_agents(bus, tmp_path, docker_client) as parts:
        yield parts


@pytest.fixture
async def cluster_on_own_broker(
    own_bus: BusSettings, tmp_path: Path, docker_client: Any
) -> AsyncIterator[Platform]:
    async with two_agents(own_bus, tmp_path, docker_client) as parts:
        yield parts


async def call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    async with (
        aiohttp.ClientSession(headers=AUTH) as http,
        http.request(method, url, json=body) as reply,
    ):
        assert reply.status < 300, await reply.text()
        return await reply.json()


async def deploy(api: str, name: str, **spec: Any) -> None:
    body = {"name": name, "image": "shoal-test/hello:1", "cpu": 0.1, "memory_mb": 32, **spec}
    await call("POST", f"{api}/v1/functions", body)


async def ready_ids(api: str, name: str, count: int, timeout_s: float = 40) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = await call("GET", f"{api}/v1/functions/{name}")
        ready = {r["id"] for r in status["replicas"] if r["state"] == "ready"}
        if len(ready) == count and len(status["replicas"]) == count:
            return ready
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)


async def test_the_broker_killed_for_10_s_under_load_fails_no_request_and_replaces_nothing(
    cluster_on_own_broker: Platform, own_bus: BusSettings, own_broker: LocalKafkaBroker
) -> None:
    cluster, bus, kafka_broker = cluster_on_own_broker, own_bus, own_broker
    api = cluster.api.url
    await deploy(api, "warm", min_replicas=2, max_replicas=2, initial_scale=2)
    before = await ready_ids(api, "warm", 2)
    async with EventLog(bus, [NODES, NODE_COMMANDS]) as log:
        async with steady_load(f"{api}/fn/warm/") as load:
            await asyncio.sleep(1)
            await asyncio.to_thread(kafka_broker.stop, kill=True)
            await asyncio.sleep(10)
            await asyncio.to_thread(kafka_broker.start)
            await asyncio.sleep(2 * NODE_TIMEOUT_S + 4)
        load.assert_no_failures()
        assert load.total > 100
        assert await ready_ids(api, "warm", 2) == before, "nothing was replaced"
        assert log.of(NodeLost) == [], "the healer suspected itself, not the nodes"
        starts = {s.replica_id for s in log.of(StartReplica)}
        assert starts == before
    await deploy(api, "after", min_replicas=0, initial_scale=0)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
        http.get(f"{api}/fn/after/") as reply,
    ):
        assert reply.status == 200, "control actions work again, no service restarted"
    for part in (*cluster.agents, cluster.scheduler, cluster.autoscaler, cluster.healer):
        assert part.process is not None and part.process.returncode is None


def running(docker_client: Any, function: str) -> int:
    return len(docker_client.containers.list(filters={"label": f"{LABEL_FUNCTION}={function}"}))


async def test_a_paused_agent_whose_node_was_lost_starts_nothing_stale(
    cluster: Platform, bus: BusSettings, docker_client: Any
) -> None:
    api = cluster.api.url
    paused, other = cluster.agents
    await call("POST", f"{api}/v1/nodes/{paused.node_id}/cordon")
    await deploy(api, "steady", min_replicas=1, max_replicas=2, initial_scale=1)
    await ready_ids(api, "steady", 1)
    await call("POST", f"{api}/v1/nodes/{paused.node_id}/uncordon")
    most = 0
    async with EventLog(bus, [FUNCTIONS, SCALE, REPLICAS, NODES, NODE_COMMANDS]) as log:
        assert paused.process is not None
        paused.process.send_signal(signal.SIGSTOP)
        try:
            await call("POST", f"{api}/v1/functions/steady/scale", {"replicas": 2})
            (stale,) = await log.wait_for(StartReplica, lambda s: s.node == paused.node_id)
            await log.wait_for(NodeLost, lambda e: e.node == paused.node_id, timeout_s=15)
            await log.wait_for(
                ReplicaReady, lambda r: r.node == other.node_id, count=2, timeout_s=30
            )
            await asyncio.sleep(10 - 2 * NODE_TIMEOUT_S)
        finally:
            paused.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            most = max(most, running(docker_client, "steady"))
            await asyncio.sleep(0.1)
        assert log.of(ReplicaStarting, lambda r: r.replica_id == stale.replica_id) == []
    assert most <= 2, f"{most} replicas ran for 2 desired"
    assert await ready_ids(api, "steady", 2)
