"""The whole platform as real processes: api, autoscaler, scheduler and a node-agent, on
the real Kafka broker and Docker Engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from events.settings import BusSettings
from events.topics import DEMAND, FUNCTIONS, REPLICAS, SCALE
from services.node_agent.runtime import LABEL_NODE
from tests.images.build import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.service_process import AgentProcess, ServiceProcess

TOKEN = "e2e-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Platform:
    api: ServiceProcess
    autoscaler: ServiceProcess
    scheduler: ServiceProcess
    agents: list[AgentProcess]


@pytest.fixture
async def platform(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    fast = {
        "SHOAL_AUTOSCALER_TICK_S": "1",
        "SHOAL_SCHEDULER_DRAIN_S": "0.5",
        "SHOAL_API_STATS_INTERVAL_S": "0.5",
    }
    parts = Platform(
        api=ServiceProcess(
            bus,
            module="api",
            port_variable="SHOAL_API_HTTP_PORT",
            log_dir=tmp_path,
            name="api",
            SHOAL_API_TOKEN=TOKEN,
            **fast,
        ),
        autoscaler=ServiceProcess(
            bus,
            module="autoscaler",
            port_variable="SHOAL_AUTOSCALER_HTTP_PORT",
            log_dir=tmp_path,
            name="autoscaler",
            **fast,
        ),
        scheduler=ServiceProcess(
            bus,
            module="scheduler",
            port_variable="SHOAL_SCHEDULER_HTTP_PORT",
            log_dir=tmp_path,
            name="scheduler",
            **fast,
        ),
        agents=[
            AgentProcess(
                bus, log_dir=tmp_path, SHOAL_NODE_CPUS="2", SHOAL_NODE_MEMORY_MB="4096", **fast
            )
        ],
    )
    started: list[ServiceProcess] = []
    try:
        for process in (*parts.agents, parts.scheduler, parts.autoscaler, parts.api):
            await process.start()
            started.append(process)
        yield parts
    finally:
        for process in reversed(started):
            await process.stop()
        for agent in parts.agents:
            for container in docker_client.containers.list(
                all=True, filters={"label": f"{LABEL_NODE}={agent.node_id}"}
            ):
                with contextlib.suppress(Exception):
                    container.remove(force=True)


@pytest.fixture
async def history(bus: BusSettings) -> AsyncIterator[EventLog]:
    async with EventLog(bus, [FUNCTIONS, SCALE, REPLICAS, DEMAND]) as log:
        yield log
