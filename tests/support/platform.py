"""The whole platform as real processes: api, autoscaler, scheduler, healer and node-agents."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from events.settings import BusSettings
from services.common.labels import LABEL_NODE
from services.common.sealing import make_key
from tests.support.service_process import AgentProcess, ServiceProcess

TOKEN = "e2e-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {
    "SHOAL_AUTOSCALER_TICK_S": "1",
    "SHOAL_SCHEDULER_DRAIN_S": "0.5",
    "SHOAL_API_STATS_INTERVAL_S": "0.5",
}


def sealing_key(folder: Path) -> Path:
    """A sealing key of secrets in `folder` (made once, owner read-only)."""
    path = folder / "secrets.key"
    make_key(path)
    return path


@dataclass
class Platform:
    api: ServiceProcess
    autoscaler: ServiceProcess
    scheduler: ServiceProcess
    healer: ServiceProcess
    agents: list[AgentProcess]


@contextlib.asynccontextmanager
async def running_platform(
    bus: BusSettings, log_dir: Path, docker_client: Any, *, agents: int = 1, **settings: str
) -> AsyncIterator[Platform]:
    options = {**FAST, "SHOAL_SECRETS_KEY_FILE": str(sealing_key(log_dir)), **settings}
    parts = Platform(
        api=ServiceProcess(
            bus,
            module="api",
            port_variable="SHOAL_API_HTTP_PORT",
            log_dir=log_dir,
            name="api",
            SHOAL_API_TOKEN=TOKEN,
            **options,
        ),
        autoscaler=ServiceProcess(
            bus,
            module="autoscaler",
            port_variable="SHOAL_AUTOSCALER_HTTP_PORT",
            log_dir=log_dir,
            name="autoscaler",
            **options,
        ),
        scheduler=ServiceProcess(
            bus,
            module="scheduler",
            port_variable="SHOAL_SCHEDULER_HTTP_PORT",
            log_dir=log_dir,
            name="scheduler",
            **options,
        ),
        healer=ServiceProcess(
            bus,
            module="healer",
            port_variable="SHOAL_HEALER_HTTP_PORT",
            log_dir=log_dir,
            name="healer",
            **options,
        ),
        agents=[
            AgentProcess(
                bus, log_dir=log_dir, SHOAL_NODE_CPUS="2", SHOAL_NODE_MEMORY_MB="4096", **options
            )
            for _ in range(agents)
        ],
    )
    started: list[ServiceProcess] = []
    try:
        for process in (
            *parts.agents,
            parts.scheduler,
            parts.autoscaler,
            parts.healer,
            parts.api,
        ):
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


async def call(
    method: str, url: str, body: dict[str, object] | None = None, expect: int = 200
) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=AUTH) as reply,
    ):
        assert reply.status == expect, await reply.text()
        return await reply.json()


async def status_of(cluster: Platform, name: str) -> dict[str, Any]:
    status: dict[str, Any] = await call("GET", f"{cluster.api.url}/v1/functions/{name}")
    return status


async def eventually(
    probe: Callable[[], Awaitable[dict[str, Any]]],
    good: Callable[[dict[str, Any]], bool],
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = await probe()
        if good(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {seen}")
        await asyncio.sleep(0.2)
