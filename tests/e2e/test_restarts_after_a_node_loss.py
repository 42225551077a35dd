"""A node is lost and comes back while functions serve; then every service is restarted,
one at a time and all at once. The restarts stop, start and re-route nothing, and no
request fails."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.settings import BusSettings
from events.topics import FUNCTIONS, NODE_COMMANDS, NODES, REPLICAS, SCALE
from events.types import DrainReplica, NodeLost, NodeReturned, StartReplica, StopReplica
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.platform import AUTH, Platform, running_platform
from tests.support.service_process import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

NODE_TIMEOUT_S = 6.0
"""Longer than a node-agent takes to restart, so that a restart is not a node loss."""
FUNCTIONS_HELD = {"alpha": 2, "beta": 3}


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(
        bus, tmp_path, docker_client, agents=2, SHOAL_HEALER_NODE_TIMEOUT_S=str(NODE_TIMEOUT_S)
    ) as parts:
        yield parts


@dataclass
class Calls:
    """Requests through the api, each retried only while the api itself cannot take it
    (connection refused, or 503 with Retry-After while it reads the log), as a load
    balancer in front of it would; `retried` counts those."""

    ok: int = 0
    retried: int = 0
    failures: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def calls(api: str, workers: int = 4) -> AsyncIterator[Calls]:
    seen = Calls()
    stop = asyncio.Event()

    async def one(http: aiohttp.ClientSession, url: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with http.get(url) as reply:
                    body = await reply.read()
                    if reply.status == 200:
                        seen.ok += 1
                        return
                    if reply.status != 503 or "Retry-After" not in reply.headers:
                        seen.failures.append(f"{reply.status} {body[:200]!r}")
                        return
            except aiohttp.ClientConnectorError:
                pass
            seen.retried += 1
            if time.monotonic() > deadline:
                seen.failures.append(f"{url}: no answer within 30 s")
                return
            await asyncio.sleep(0.05)

    async def worker(n: int) -> None:
        names = sorted(FUNCTIONS_HELD)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            turn = n
            while not stop.is_set():
                turn += 1
                await one(http, f"{api}/fn/{names[turn % len(names)]}/")
                await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(worker(n)) for n in range(workers)]
    try:
        yield seen
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def replicas_by_function(api: str) -> dict[str, list[tuple[str, str, str]]]:
    async with (
        aiohttp.ClientSession(headers=AUTH) as http,
        http.get(f"{api}/v1/functions") as reply,
    ):
        assert reply.status == 200, await reply.text()
        functions = (await reply.json())["functions"]
    return {
        f["name"]: sorted((r["id"], r["node"], r["state"]) for r in f["replicas"])
        for f in functions
    }


async def settled(api: str, timeout_s: float = 60) -> dict[str, list[tuple[str, str, str]]]:
    """The replicas once every function has its count, all ready."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = await replicas_by_function(api)
        counts = {name: len(replicas) for name, replicas in seen.items()}
        ready = all(state == "ready" for rs in seen.values() for _, _, state in rs)
        if counts == FUNCTIONS_HELD and ready:
            return seen
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.3)


def commands(log: EventLog) -> int:
    return len(log.of(StartReplica)) + len(log.of(DrainReplica)) + len(log.of(StopReplica))


async def lose_and_return(cluster: Platform, log: EventLog) -> None:
    paused = cluster.agents[0]
    assert paused.process is not None
    paused.process.send_signal(signal.SIGSTOP)
    try:
        await log.wait_for(NodeLost, lambda e: e.node == paused.node_id, timeout_s=30)
        await settled(cluster.api.url)
    finally:
        paused.process.send_signal(signal.SIGCONT)
    await log.wait_for(NodeReturned, lambda e: e.node == paused.node_id, timeout_s=30)


async def restart(parts: list[ServiceProcess]) -> None:
    for part in parts:
        assert await part.stop() == 0
    await asyncio.gather(*(part.start() for part in parts))


async def test_restarts_after_a_node_loss_change_nothing_and_fail_no_request(
    cluster: Platform, bus: BusSettings
) -> None:
    api = cluster.api.url
    async with aiohttp.ClientSession(headers=AUTH) as http:
        for name, count in FUNCTIONS_HELD.items():
            spec = {
                "name": name,
                "image": "shoal-test/hello:1",
                "cpu": 0.1,
                "memory_mb": 32,
                "min_replicas": count,
                "max_replicas": count,
                "initial_scale": count,
            }
            async with http.post(f"{api}/v1/functions", json=spec) as reply:
                assert reply.status == 201, await reply.text()
    async with EventLog(bus, [FUNCTIONS, SCALE, REPLICAS, NODES, NODE_COMMANDS]) as log:
        await settled(api)
        async with calls(api) as load:
            await lose_and_return(cluster, log)
            await asyncio.sleep(NODE_TIMEOUT_S)
            before, commanded = await settled(api), commands(log)
            control = [*cluster.agents, cluster.scheduler, cluster.autoscaler, cluster.healer]
            for part in control:
                await restart([part])
                await asyncio.sleep(2)
                assert await replicas_by_function(api) == before, part.module
            assert load.retried == 0, "restarting the control plane touched the request path"
            await restart([cluster.api])
            await asyncio.sleep(2)
            await restart([*control, cluster.api])
            await asyncio.sleep(NODE_TIMEOUT_S)
            assert await replicas_by_function(api) == before
        assert commands(log) == commanded, [
            f"{e.type} {e.subject}" for e in log.events[-10:] if "command" in e.type
        ]
    assert not load.failures, load.failures[:5]
    assert load.ok > 100
