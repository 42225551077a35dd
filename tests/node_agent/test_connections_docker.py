"""The connections open to a real replica, in its own network or on the host's: one held
open by a client is seen, and none once it is closed (what ends a drain early and what
makes a replica busy in its node's heartbeat)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest

from services.node_agent.docker_runtime import DockerRuntime
from tests.node_agent.conftest import remove_node_containers, start_command
from tests.support.ports import free_port

pytestmark = pytest.mark.docker


async def seen(runtime: DockerRuntime, replica: str, count: int) -> int | None:
    """The count the runtime sees once it is `count`, or the last seen within 3 s."""
    found = None
    for _ in range(30):
        found = await runtime.connections(replica)
        if found == count:
            break
        await asyncio.sleep(0.1)
    return found


@pytest.mark.parametrize("network", ["bridge", "host"])
async def test_a_connection_held_open_is_seen_and_its_end_too(
    network: str, docker_client: Any, images: dict[str, str]
) -> None:
    node = f"conn-{uuid.uuid4().hex[:6]}"
    runtime = DockerRuntime(node_id=node, address="127.0.0.1", network=network)
    replica, port = f"r-{node}", free_port()
    try:
        await runtime.start(start_command(node, images["hello"], replica), port=port)
        await asyncio.sleep(0.5)
        assert await seen(runtime, replica, 0) == 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            assert await seen(runtime, replica, 1) == 1
        assert await seen(runtime, replica, 0) == 0
        assert await runtime.connections("no-such-replica") is None
    finally:
        await runtime.close()
        remove_node_containers(docker_client, node)
