"""The replicas' network on a fresh engine: the first starts of a node, all at once, make
it once (an engine before API 1.44 lets two creations of one name both succeed, and a
name that matches two networks fails every start as ambiguous); duplicates left by
agents of one host that raced are pruned."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.node_agent.docker_calls import ensure_replica_network
from services.node_agent.docker_runtime import DockerRuntime
from services.node_agent.sandbox import NETWORK_OPTIONS, Sandbox
from tests.node_agent.conftest import remove_node_containers, start_command
from tests.support.ports import free_port

pytestmark = pytest.mark.docker


@pytest.fixture
def network_name(docker_client: Any) -> Iterator[str]:
    name = f"shoal-test-net-{uuid.uuid4().hex[:6]}"
    yield name
    for network in docker_client.networks.list(names=[name]):
        with contextlib.suppress(Exception):
            network.remove()


def networks_named(docker_client: Any, name: str) -> list[Any]:
    return [n for n in docker_client.networks.list(names=[name]) if n.name == name]


async def test_concurrent_first_starts_make_one_network_and_all_start(
    docker_client: Any, images: dict[str, str], network_name: str
) -> None:
    node = f"net-{uuid.uuid4().hex[:6]}"
    runtime = DockerRuntime(
        node_id=node,
        address="127.0.0.1",
        network="bridge",
        sandbox=Sandbox(network_name=network_name),
    )
    try:
        commands = [start_command(node, images["hello"], f"r-{n}-{node}") for n in range(8)]
        await asyncio.gather(*(runtime.start(c, port=free_port()) for c in commands))
        assert len(networks_named(docker_client, network_name)) == 1
        running = docker_client.containers.list(filters={"network": network_name})
        assert len(running) == 8
    finally:
        await runtime.close()
        remove_node_containers(docker_client, node)


def test_duplicate_networks_of_the_name_are_pruned_to_one(
    docker_client: Any, network_name: str
) -> None:
    made = [
        docker_client.networks.create(network_name, driver="bridge", options=NETWORK_OPTIONS)
        for _ in range(3)
    ]
    assert len(networks_named(docker_client, network_name)) == 3
    ensure_replica_network(docker_client, network_name, {})
    left = networks_named(docker_client, network_name)
    assert [n.id for n in left] == [made[0].id]
