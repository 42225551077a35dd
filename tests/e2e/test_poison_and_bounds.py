"""No input stops Shoal: poison in every topic, a replica flooding its logs, an api that
restarts under a long history. Afterwards every service runs, is ready, and works."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from events.bus import EventProducer
from events.envelope import encode, new_envelope
from events.settings import BusSettings
from events.topics import (
    CONTAINER_STATS,
    DEAD_LETTER,
    DEMAND,
    FUNCTIONS,
    HEARTBEATS,
    NODE_COMMANDS,
    NODE_STATUS,
    NODES,
    REPLICAS,
    REQUEST_STATS,
    SCALE,
)
from events.types import (
    FunctionDeployed,
    FunctionSpec,
    NodeCapacity,
    NodeHeartbeat,
    NodeLost,
    ReplicaFailed,
)
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.kafka_io import raw_records
from tests.support.platform import AUTH, Platform, running_platform
from tests.support.service_process import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

READ_TOPICS = (
    FUNCTIONS,
    SCALE,
    REPLICAS,
    NODES,
    NODE_STATUS,
    NODE_COMMANDS,
    HEARTBEATS,
    REQUEST_STATS,
    CONTAINER_STATS,
    DEMAND,
)
STRUCTURED = [("content-type", b"application/cloudevents+json")]


@pytest.fixture
async def platform(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(bus, tmp_path, docker_client) as parts:
        yield parts


def poison(node: str) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """(what, value, headers) of every kind of bad message."""
    spec = FunctionSpec(name="p", image="shoal-test/hello:1")
    _, good, _ = encode(
        new_envelope(FunctionDeployed(function="p", revision=1, spec=spec), source="/x")
    )
    lost = new_envelope(
        NodeLost(node=node, last_heartbeat_at="", timeout_s=3, evidence="forged"),
        source="/x",
        at=datetime(2099, 1, 1, tzinfo=UTC),
    )
    beat = NodeHeartbeat(
        node=node,
        seq=1,
        capacity=NodeCapacity(cpus=2, memory_mb=1024, max_replicas=9),
        used_cpus=0.5,
        used_memory_mb=0,
        replicas=0,
    )
    _, beat_value, _ = encode(new_envelope(beat, source="/x"))
    schema = f'"schemaversion":"{FunctionDeployed.SCHEMA}"'.encode()
    wrong_major = good.replace(schema, b'"schemaversion":"9.0"')
    assert wrong_major != good
    assert b'"used_cpus":0.5' in beat_value
    return [
        ("900 KB", b"x" * 900_000, STRUCTURED),
        ("not JSON", b"\x00\x01\x02 not json at all", STRUCTURED),
        ("not a CloudEvent", json.dumps({"hello": "world"}).encode(), STRUCTURED),
        (
            "wrong major",
            wrong_major,
            STRUCTURED,
        ),
        ("Infinity", beat_value.replace(b'"used_cpus":0.5', b'"used_cpus":Infinity'), STRUCTURED),
        ("NaN", beat_value.replace(b'"used_cpus":0.5', b'"used_cpus":NaN'), STRUCTURED),
        ("far future", encode(lost)[1], STRUCTURED),
    ]


async def write_poison(bus: BusSettings, node: str) -> dict[tuple[str, int, int], str]:
    """Every bad message into every topic a service reads; returns where each landed."""
    raw = AIOKafkaProducer(**bus.client_kwargs(), max_request_size=2 << 20)
    await raw.start()
    landed: dict[tuple[str, int, int], str] = {}
    try:
        for topic in READ_TOPICS:
            for what, value, headers in poison(node):
                meta = await raw.send_and_wait(
                    topic.name(bus.namespace), key=node.encode(), value=value, headers=headers
                )
                landed[(meta.topic, meta.partition, meta.offset)] = what
    finally:
        await raw.stop()
    return landed


async def dead_letters_of(bus: BusSettings, origins: set[str]) -> list[Any]:
    """Dead-letter copies, read until one of each origin is among them (or 60 s)."""
    deadline = time.monotonic() + 60
    count = len(origins)
    dead: list[Any] = []
    while True:
        try:
            dead = await raw_records(bus, DEAD_LETTER, count, timeout_s=5)
        except AssertionError:
            return dead
        found = {dict(r.headers)["shoal_dlq_origin"].decode() for r in dead}
        if origins <= found or time.monotonic() > deadline:
            return dead
        count = len(dead) + 1
        await asyncio.sleep(0.5)


async def all_well(parts: list[ServiceProcess]) -> None:
    async with aiohttp.ClientSession() as http:
        for part in parts:
            assert part.process is not None and part.process.returncode is None, part.module
            for probe in ("healthz", "readyz"):
                async with http.get(f"{part.url}/{probe}") as reply:
                    assert reply.status == 200, (part.module, probe, await reply.text())


async def call_from_zero(api: str, name: str) -> None:
    spec = {
        "name": name,
        "image": "shoal-test/hello:1",
        "min_replicas": 0,
        "initial_scale": 0,
        "cpu": 0.1,
        "memory_mb": 32,
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply:
            assert reply.status == 201, await reply.text()
        async with http.get(f"{api}/fn/{name}/") as reply:
            assert reply.status == 200, await reply.text()


async def test_poison_in_every_topic_stops_no_service_and_is_dead_lettered(
    platform: Platform, bus: BusSettings
) -> None:
    parts = [*platform.agents, platform.scheduler, platform.autoscaler, platform.healer]
    parts.append(platform.api)
    await call_from_zero(platform.api.url, "before")
    landed = await write_poison(bus, platform.agents[0].node_id)
    producer = EventProducer(bus, source="/shoal/test/duplicate")
    await producer.start()
    try:
        async with EventLog(bus, [FUNCTIONS]) as log:
            (deployed,) = await log.wait_for(FunctionDeployed)
            again = next(e for e in log.events if e.data is deployed)
            await (await producer.send(again))
    finally:
        await producer.stop()
    await asyncio.sleep(3)
    await all_well(parts)
    await call_from_zero(platform.api.url, "after")
    wanted = {f"{t}/{p}/{o}": f"{t} {what}" for (t, p, o), what in landed.items()}
    dead = await dead_letters_of(bus, set(wanted))
    origins = {dict(r.headers)["shoal_dlq_origin"].decode() for r in dead}
    assert not set(wanted) - origins, [wanted[o] for o in set(wanted) - origins]
    assert max(len(r.value or b"") for r in dead) <= 64 * 1024, "copies are cut to fit"
    for part in parts:
        await part.stop()
    for part in parts:
        await part.start()
    await all_well(parts)


async def test_a_replica_flooding_its_logs_is_reported_failed_and_so_is_the_next_crash(
    platform: Platform, bus: BusSettings
) -> None:
    spec = {
        "name": "flood",
        "image": "shoal-test/flood:1",
        "min_replicas": 1,
        "cpu": 0.1,
        "memory_mb": 32,
    }
    async with EventLog(bus, [REPLICAS]) as log:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{platform.api.url}/v1/functions", json=spec, headers=AUTH) as reply,
        ):
            assert reply.status == 201, await reply.text()
        failures = await log.wait_for(
            ReplicaFailed, lambda f: f.function == "flood", count=2, timeout_s=60
        )
    first = failures[0]
    assert first.exit_code == 1 and first.last_logs
    assert all(len(line) <= 400 for line in first.last_logs)
    assert "\x01" not in "".join(first.last_logs)
    assert failures[1].replica_id != first.replica_id
    await all_well([*platform.agents])


async def test_a_restarted_api_answers_503_never_404_until_it_has_read_the_log(
    platform: Platform, bus: BusSettings
) -> None:
    api = platform.api
    await call_from_zero(api.url, "old")
    await write_history(bus, 150_000)
    await api.stop()
    start = asyncio.create_task(api.start(timeout_s=120))
    seen: list[int] = []
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{api.url}/fn/old/") as reply:
                    seen.append(reply.status)
                    if reply.status == 503:
                        assert reply.headers.get("Retry-After")
                    if reply.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.02)
    await start
    assert seen and seen[-1] == 200, seen[-20:]
    assert 404 not in seen
    assert 503 in seen, "the api was asked while it read the log back"


async def write_history(bus: BusSettings, count: int) -> None:
    """Many heartbeats of nodes long gone: a log the api takes a while to read back."""
    producer = EventProducer(bus, source="/shoal/test/history")
    await producer.start()
    try:
        capacity = NodeCapacity(cpus=1, memory_mb=512, max_replicas=10)
        pending = []
        for n in range(count):
            beat = NodeHeartbeat(
                node=f"ghost-{n % 500}",
                seq=n,
                capacity=capacity,
                used_cpus=0,
                used_memory_mb=0,
                replicas=0,
            )
            pending.append(await producer.send(producer.envelope(beat)))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
