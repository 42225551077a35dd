"""Stopping replicas on the real engine: SIGTERM reaches a function through the container's
init, so one that handles it (busybox httpd, which as PID 1 would ignore it) is gone at
once; one that ignores it is killed at its grace; stops in flight, more of them than the
engine's stop lane has threads, hold no thread through their grace, so a start made
meanwhile is not delayed and they all end together, at the grace."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.node_agent.docker_calls import LANES
from services.node_agent.docker_runtime import DockerRuntime, container_name
from tests.node_agent.conftest import remove_node_containers, start_command
from tests.support.ports import free_port

pytestmark = pytest.mark.docker

DEAF = ["/bin/sh", "-c", "trap '' TERM; exec httpd -f -p ${HOST}:${PORT} -h /www"]
"""busybox httpd that ignores SIGTERM (an ignored signal stays ignored across exec)."""
GRACE_S = 6.0
TEARDOWN_S = 4.5
"""The engine's own teardown of a dozen killed containers: under 1 s alone, 3.3 s seen under
CI's load. Stops that held a stop lane's thread through their grace would take two graces."""


@pytest.fixture(params=["events", "no events"])
async def runtime(
    request: pytest.FixtureRequest, docker_client: Any, images: dict[str, str]
) -> AsyncIterator[DockerRuntime]:
    """A runtime whose events stream is read, as the agent does; or not, used alone."""
    node = f"stops-{uuid.uuid4().hex[:6]}"
    found = DockerRuntime(node_id=node, address="127.0.0.1", network="host")
    reading = None
    if request.param == "events":

        async def read() -> None:
            async for _ in found.exits():
                pass

        reading = asyncio.create_task(read())
        await asyncio.sleep(0.3)
    yield found
    if reading is not None:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    await found.close()
    remove_node_containers(docker_client, node)


async def start(runtime: DockerRuntime, image: str, **spec: Any) -> str:
    replica = f"r-{uuid.uuid4().hex[:6]}"
    await runtime.start(start_command(runtime.node_id, image, replica, **spec), port=free_port())
    return replica


def gone(docker_client: Any, replica: str) -> bool:
    return not docker_client.containers.list(
        all=True, filters={"name": f"^{container_name(replica)}$"}
    )


async def test_a_function_that_handles_sigterm_stops_within_a_second(
    runtime: DockerRuntime, docker_client: Any, images: dict[str, str]
) -> None:
    replica = await start(runtime, images["hello"])
    await asyncio.sleep(0.3)
    began = time.monotonic()
    await runtime.stop(replica, timeout_s=10)
    took = time.monotonic() - began
    assert took < 1.0, f"stopped in {took:.2f} s"
    assert gone(docker_client, replica)


async def test_stops_in_flight_hold_no_thread_and_delay_no_start(
    runtime: DockerRuntime, docker_client: Any, images: dict[str, str]
) -> None:
    began = time.monotonic()
    baseline = await start(runtime, images["hello"])
    start_s = time.monotonic() - began
    deaf = [await start(runtime, images["hello"], command=DEAF) for _ in range(LANES["stop"] + 4)]
    await asyncio.sleep(0.5)
    began = time.monotonic()
    stops = asyncio.gather(*(runtime.stop(r, timeout_s=GRACE_S) for r in deaf))
    await asyncio.sleep(0.5)
    during = time.monotonic()
    late = await start(runtime, images["hello"])
    start_during_s = time.monotonic() - during
    await stops
    all_stopped_s = time.monotonic() - began
    assert start_during_s < max(1.0, 3 * start_s), (start_during_s, start_s)
    took = f"{len(deaf)} stops took {all_stopped_s:.1f} s"
    assert GRACE_S <= all_stopped_s < GRACE_S + TEARDOWN_S < 2 * GRACE_S, took
    assert all(gone(docker_client, r) for r in deaf)
    for replica in (baseline, late):
        await runtime.stop(replica, timeout_s=1)
