"""A node's container engine restarts under a running function: the node-agent says its
engine went away and came back, reports the lost replica as the platform's failure, and
the function serves again with no manual step. The engine restarted is a second dockerd
of the test's own (own socket, data and exec roots, and its own network namespace, a
test host the test makes), so the rest of the suite is not disturbed."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.settings import BusSettings
from events.topics import NODE_STATUS, REPLICAS
from events.types import NodeRuntimeChanged, ReplicaFailed, ReplicaReady
from services.local import lab_net
from services.local.engines import Engine
from services.local.lab import saved_test_images
from services.local.lab_net import LabPlan
from tests.support.event_log import EventLog
from tests.support.platform import AUTH, Platform, running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.docker]


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Engine]:
    """A one-host lab of the test's own: its namespace on a switch of its own, and its
    dockerd with the test image loaded."""
    plan = LabPlan(
        1, 0, tag=f"dr{uuid.uuid4().hex[:4]}", subnet=f"10.231.{random.randrange(10, 250)}"
    )
    try:
        lab_net.check_can_build()
        lab_net.make_switch(plan)
        lab_net.make_node(plan, plan.host(1))
    except lab_net.LabError as exc:
        pytest.fail(f"cannot make a test host: {exc}")
    host = plan.host(1)
    found = Engine(tmp_path_factory.mktemp("dockerd", numbered=True), host.name, host.address)
    try:
        found.start()
        found.load(saved_test_images(docker_client, only=("shoal-test/hello:1",)))
        yield found
        with contextlib.suppress(Exception), contextlib.closing(found.client()) as second:
            for container in second.containers.list(all=True):
                container.remove(force=True)
        found.stop()
    finally:
        lab_net.kill_all(plan.host(1).name)
        found.unmount()
        lab_net.remove(plan.host(1).name)
        lab_net.remove_switch(plan)


@pytest.fixture
async def platform(
    bus: BusSettings, tmp_path: Path, docker_client: Any, engine: Engine
) -> AsyncIterator[Platform]:
    async with running_platform(
        bus,
        tmp_path,
        docker_client,
        DOCKER_HOST=engine.socket,
        SHOAL_NODE_ADDRESS=engine.address,
        # The engine has no bridge (--bridge=none): its test host is the replicas' box.
        SHOAL_NODE_NETWORK="host",
    ) as parts:
        yield parts


async def answers(url: str, timeout_s: float) -> int:
    """How long until the url answers 200 (seconds), failing past the timeout."""
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as reply:
                    if reply.status == 200:
                        return round(time.monotonic() - started)
            assert time.monotonic() - started < timeout_s, f"{url} did not answer again"
            await asyncio.sleep(0.2)


async def test_a_restarted_container_engine_is_ridden_out_without_manual_steps(
    platform: Platform, bus: BusSettings, engine: Engine
) -> None:
    api = platform.api.url
    spec = {"name": "hello", "image": "shoal-test/hello:1", "min_replicas": 1, "cpu": 0.1}
    async with EventLog(bus, [REPLICAS, NODE_STATUS]) as log:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply,
        ):
            assert reply.status == 201, await reply.text()
        (first,) = await log.wait_for(ReplicaReady, timeout_s=30)
        await answers(f"{api}/fn/hello/", 10)
        await asyncio.to_thread(engine.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(engine.start)
        await log.wait_for(ReplicaReady, lambda r: r.replica_id != first.replica_id, timeout_s=60)
        await answers(f"{api}/fn/hello/", 30)
        failed = log.of(ReplicaFailed, lambda f: f.replica_id == first.replica_id)
        assert all(f.cause == "platform" for f in failed), "the engine's fault, not the function's"
        said = [c.available for c in log.of(NodeRuntimeChanged)]
    assert said == [False, True], "the agent said its engine went away and came back"
