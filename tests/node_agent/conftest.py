"""Fixtures for node-agent tests against the real Docker Engine and Kafka broker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.bus import EventProducer
from events.settings import BusSettings
from events.topics import CONTAINER_STATS, HEARTBEATS, NODE_STATUS, NODES, REPLICAS
from events.types import FunctionSpec, StartReplica
from services.common.labels import LABEL_NODE
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.service_process import AgentProcess


@pytest.fixture(scope="session")
def images(docker_client: Any) -> dict[str, str]:
    return ensure_test_images(docker_client)


def remove_node_containers(docker_client: Any, node_id: str) -> None:
    for container in docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_NODE}={node_id}"}
    ):
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.fixture
async def agent_factory(docker_client: Any) -> AsyncIterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        await agent.stop()
        remove_node_containers(docker_client, agent.node_id)


@pytest.fixture
async def agent(
    bus: BusSettings, tmp_path: Path, images: dict[str, str], agent_factory: list[AgentProcess]
) -> AgentProcess:
    process = AgentProcess(bus, log_dir=tmp_path)
    agent_factory.append(process)
    return await process.start()


@pytest.fixture
async def events(bus: BusSettings) -> AsyncIterator[EventLog]:
    async with EventLog(bus, [REPLICAS, NODES, NODE_STATUS, HEARTBEATS, CONTAINER_STATS]) as log:
        yield log


@pytest.fixture
async def commands(bus: BusSettings) -> AsyncIterator[EventProducer]:
    producer = EventProducer(bus, source="/shoal/test/scheduler")
    await producer.start()
    yield producer
    await producer.stop()


def start_command(
    node: str, image: str, replica: str, *, ready_timeout_s: float = 30.0, **spec: Any
) -> StartReplica:
    return StartReplica(
        node=node,
        function=spec.pop("function", "hello"),
        revision=1,
        replica_id=replica,
        spec=FunctionSpec(name="hello", image=image, **spec),
        ready_timeout_s=ready_timeout_s,
    )
