"""Two instances of a decider on real Kafka and Docker: one leads (Kafka's group coordinator
elects it); killed, the other takes over within 5 s and the function scales on with no
failed request; paused past its session, it is deposed, and nothing it sends after it
wakes is obeyed. The log's invariants hold throughout."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.settings import BusSettings
from services.local.images import ensure_test_images
from tests.support.invariants import assert_log_holds
from tests.support.load import steady_load
from tests.support.platform import Platform, call, eventually, running_platform, status_of
from tests.support.service_process import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.docker]
SPEC = {"image": "shoal-test/hello:1", "cpu": 0.1, "memory_mb": 32, "max_replicas": 4}
LEADING = re.compile(r'^shoal_leader\{instance="[^"]+",role="(\w+)"\} 1\.0$', re.M)


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(bus, tmp_path, docker_client) as parts:
        yield parts


async def leads(process: ServiceProcess, role: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{process.url}/metrics") as reply:
            return role in LEADING.findall(await reply.text())
    except aiohttp.ClientError:
        return False


async def leader_of(role: str, *instances: ServiceProcess, timeout_s: float = 15) -> ServiceProcess:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p for p in instances if await leads(p, role)]
        if len(found) == 1:
            return found[0]
        assert len(found) < 2, "two instances lead at once"
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {role} instance leads after {timeout_s} s")


async def scaled(cluster: Platform, name: str, replicas: int, timeout_s: float = 30) -> None:
    await call("POST", f"{cluster.api.url}/v1/functions/{name}/scale", {"replicas": replicas}, 202)
    await eventually(lambda: status_of(cluster, name), lambda s: s["ready"] == replicas, timeout_s)


async def test_a_killed_leader_is_replaced_within_5_s_and_nothing_is_lost(
    cluster: Platform, bus: BusSettings
) -> None:
    second = cluster.scheduler.successor("scheduler-2")
    await second.start()
    try:
        await call("POST", f"{cluster.api.url}/v1/functions", {"name": "hello", **SPEC}, 201)
        await eventually(lambda: status_of(cluster, "hello"), lambda s: s["ready"] == 1, 30)
        first = await leader_of("scheduler", cluster.scheduler, second)
        standby = second if first is cluster.scheduler else cluster.scheduler
        assert not await leads(standby, "scheduler")
        async with steady_load(f"{cluster.api.url}/fn/hello/") as load:
            assert first.process is not None
            killed = time.monotonic()
            first.process.send_signal(signal.SIGKILL)
            assert await leader_of("scheduler", standby, timeout_s=10) is standby
            failover = time.monotonic() - killed
            await scaled(cluster, "hello", 3)
            await asyncio.sleep(1)
        load.assert_no_failures()
        assert failover < 5, f"the standby took {failover:.2f} s to lead"
        await asyncio.sleep(2)
        await assert_log_holds(bus, grace_s=0)
    finally:
        await second.stop()


async def test_a_paused_leader_is_deposed_and_not_obeyed_when_it_wakes(
    cluster: Platform, bus: BusSettings
) -> None:
    second = cluster.scheduler.successor("scheduler-2")
    await second.start()
    try:
        await call("POST", f"{cluster.api.url}/v1/functions", {"name": "hello", **SPEC}, 201)
        await eventually(lambda: status_of(cluster, "hello"), lambda s: s["ready"] == 1, 30)
        first = await leader_of("scheduler", cluster.scheduler, second)
        standby = second if first is cluster.scheduler else cluster.scheduler
        assert first.process is not None
        first.process.send_signal(signal.SIGSTOP)
        try:
            assert await leader_of("scheduler", standby, timeout_s=10) is standby
            await scaled(cluster, "hello", 2)
            await asyncio.sleep(6)
        finally:
            first.process.send_signal(signal.SIGCONT)
        await scaled(cluster, "hello", 3)
        assert await leader_of("scheduler", first, standby) is standby, "the lead stays put"
        await asyncio.sleep(2)
        held = await assert_log_holds(bus, grace_s=0)
        assert held.checked["deposed not obeyed"] >= 3
    finally:
        await second.stop()
