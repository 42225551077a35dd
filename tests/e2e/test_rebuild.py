"""Every service stopped and started again rebuilds the same state from Kafka alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.history import read_all
from events.projections.snapshot import snapshot, world_at
from events.settings import BusSettings
from services.local.images import ensure_test_images
from tests.support.platform import AUTH, Platform, running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.docker]


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(bus, tmp_path, docker_client, agents=2) as parts:
        yield parts


async def seen_by_api(api: str) -> dict[str, Any]:
    """What the api says, less what moves by itself (heartbeats, load)."""
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{api}/v1/functions") as reply:
            functions = (await reply.json())["functions"]
        async with http.get(f"{api}/v1/nodes") as reply:
            nodes = (await reply.json())["nodes"]
    return {
        "functions": [
            {
                key: f[key]
                for key in ("name", "revision", "revisions", "desired", "ready", "manual_replicas")
            }
            | {
                "replicas": sorted(
                    (r["id"], r["revision"], r["node"], r["state"]) for r in f["replicas"]
                )
            }
            for f in functions
        ],
        "nodes": [{key: n[key] for key in ("node", "lost", "cordoned", "draining")} for n in nodes],
    }


async def steady(api: str, wanted: dict[str, int], timeout_s: float = 40) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        seen = await seen_by_api(api)
        ready = {f["name"]: f["ready"] for f in seen["functions"]}
        states = {r[3] for f in seen["functions"] for r in f["replicas"]}
        if ready == wanted and states == {"ready"}:
            return seen
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.3)


async def test_all_services_restarted_rebuild_the_same_state(
    cluster: Platform, bus: BusSettings
) -> None:
    api = cluster.api.url
    async with aiohttp.ClientSession(headers=AUTH) as http:
        for name, replicas in (("alpha", 2), ("beta", 1)):
            spec = {
                "name": name,
                "image": "shoal-test/hello:1",
                "cpu": 0.1,
                "memory_mb": 32,
                "min_replicas": replicas,
                "max_replicas": 3,
            }
            async with http.post(f"{api}/v1/functions", json=spec) as reply:
                assert reply.status == 201, await reply.text()
        async with http.post(f"{api}/v1/functions/beta/scale", json={"replicas": 2}) as reply:
            assert reply.status == 202
        node = cluster.agents[0].node_id
        async with http.post(f"{api}/v1/nodes/{node}/cordon") as reply:
            assert reply.status == 202
    before = await steady(api, {"alpha": 2, "beta": 2})
    replayed_before = snapshot(world_at(await read_all(bus), None))

    parts = [*cluster.agents, cluster.scheduler, cluster.autoscaler, cluster.healer, cluster.api]
    for part in reversed(parts):
        assert await part.stop() == 0
    for part in parts:
        await part.start()

    after = await steady(api, {"alpha": 2, "beta": 2})
    assert after == before, f"before: {before}\nafter:  {after}"
    await asyncio.sleep(2)
    replayed_after = snapshot(world_at(await read_all(bus), None))
    assert replayed_after["functions"] == replayed_before["functions"]
    assert replayed_after["replicas"] == replayed_before["replicas"]
    assert replayed_after["nodes"] == replayed_before["nodes"]
    assert await seen_by_api(api) == before
