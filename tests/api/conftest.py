"""The api as a real process against the real broker; replicas are real local HTTP servers
announced with the same events a node-agent publishes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from events.bus import EventProducer
from events.settings import BusSettings
from events.topics import DEMAND, FUNCTIONS, REQUEST_STATS
from events.types import ReplicaReady
from tests.support.event_log import EventLog
from tests.support.platform import sealing_key
from tests.support.ports import free_port
from tests.support.service_process import ServiceProcess

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


BODY_BUDGET = 64 << 20
"""Request body bytes the test api may hold at once (the least it can be set to)."""


def api_process(bus: BusSettings, tmp_path: Path, **settings: str) -> ServiceProcess:
    """The test api (not started), with its defaults and `settings` over them."""
    defaults = {
        "SHOAL_API_TOKEN": TOKEN,
        "SHOAL_API_QUEUE_LIMIT": "3",
        "SHOAL_API_STATS_INTERVAL_S": "0.5",
        "SHOAL_API_MAX_BODY_BYTES": "65536",
        "SHOAL_API_BODY_BUDGET_BYTES": str(BODY_BUDGET),
        "SHOAL_SECRETS_KEY_FILE": str(sealing_key(tmp_path)),
    }
    return ServiceProcess(
        bus,
        module="api",
        port_variable="SHOAL_API_HTTP_PORT",
        log_dir=tmp_path,
        name="api",
        **(defaults | settings),
    )


@pytest.fixture
async def api(bus: BusSettings, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    process = api_process(bus, tmp_path)
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A connection per request: each call to /fn/ is taken by the api's lean front (a
    connection that began with /v1/ stays with aiohttp's server: `test_front.py`)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


@pytest.fixture
async def events(bus: BusSettings) -> AsyncIterator[EventLog]:
    async with EventLog(bus, [FUNCTIONS, DEMAND, REQUEST_STATS]) as log:
        yield log


@pytest.fixture
async def agent_events(bus: BusSettings) -> AsyncIterator[EventProducer]:
    """Publishes replica events, standing in for a node-agent."""
    producer = EventProducer(bus, source="/shoal/node/test")
    await producer.start()
    yield producer
    await producer.stop()


@dataclass
class Replica:
    """A real HTTP server on 127.0.0.1 that records what it was sent."""

    name: str
    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            body = await request.read()
            self.seen.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "raw_path": request.raw_path,
                    "query": dict(request.query),
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            action = request.path.strip("/").split("/")[0]
            if action == "slow":
                await asyncio.sleep(float(request.query.get("s", "1")))
            if action == "fail":
                return web.json_response({"replica": self.name}, status=500)
            if action == "big":
                return web.Response(body=b"x" * int(request.query["bytes"]))
            if action == "stream":
                response = web.StreamResponse()
                await response.prepare(request)
                for n in range(int(request.query.get("chunks", "3"))):
                    await response.write(f"chunk {n}\n".encode())
                    await asyncio.sleep(float(request.query.get("delay", "0.3")))
                await response.write_eof()
                return response
            return web.json_response(
                {
                    "replica": self.name,
                    "method": request.method,
                    "path": request.path,
                    "query": dict(request.query),
                    "body": body.decode(errors="replace"),
                    "headers": dict(request.headers),
                },
                headers={"X-Replica": self.name, "Connection": "keep-alive", "Set-Cookie": "a=1"},
            )
        finally:
            self.in_flight -= 1


ReplicaFactory = Callable[[str], Awaitable[Replica]]


@pytest.fixture
async def replica() -> AsyncIterator[ReplicaFactory]:
    started: list[Replica] = []

    async def start(name: str) -> Replica:
        server = Replica(name=name, port=free_port())
        app = web.Application(client_max_size=BODY_BUDGET)
        app.router.add_route("*", "/{tail:.*}", server.handle)
        server.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await server.runner.setup()
        await web.TCPSite(server.runner, "127.0.0.1", server.port).start()
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.runner is not None
        await server.runner.cleanup()


async def deploy(
    http: aiohttp.ClientSession, api: ServiceProcess, name: str, **spec: Any
) -> dict[str, Any]:
    body = {"name": name, "image": "shoal-test/hello:1", **spec}
    async with http.post(f"{api.url}/v1/functions", json=body, headers=AUTH) as reply:
        assert reply.status == 201, await reply.text()
        result: dict[str, Any] = await reply.json()
        return result


async def announce(
    agent_events: EventProducer,
    function: str,
    replica: Replica,
    *,
    revision: int = 1,
    limit: int = 0,
    node: str = "n1",
) -> None:
    await announce_at(
        agent_events, function, replica.name, replica.endpoint, revision, limit=limit, node=node
    )


async def announce_at(
    agent_events: EventProducer,
    function: str,
    replica_id: str,
    endpoint: str,
    revision: int = 1,
    *,
    limit: int = 0,
    node: str = "n1",
) -> None:
    """A replica at any endpoint (one that refuses, or a raw server) said to be ready."""
    await agent_events.publish(
        ReplicaReady(
            function=function,
            revision=revision,
            replica_id=replica_id,
            node=node,
            endpoint=endpoint,
            concurrency_limit=limit,
        )
    )


async def wait_states(
    http: aiohttp.ClientSession,
    api: ServiceProcess,
    function: str,
    states: dict[str, str],
    timeout_s: float = 15.0,
) -> None:
    """Until the api's status shows each named replica in its state."""
    for _ in range(int(timeout_s / 0.05)):
        async with http.get(f"{api.url}/v1/functions/{function}", headers=AUTH) as reply:
            if reply.status == 200:
                seen = {r["id"]: r["state"] for r in (await reply.json())["replicas"]}
                if all(seen.get(r) == state for r, state in states.items()):
                    return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{function}'s replicas never were {states}")


async def wait_routed(
    http: aiohttp.ClientSession,
    api: ServiceProcess,
    function: str,
    count: int,
    timeout_s: float = 15.0,
) -> None:
    """Until the api's status shows `count` ready replicas of the function."""
    for _ in range(int(timeout_s / 0.05)):
        async with http.get(f"{api.url}/v1/functions/{function}", headers=AUTH) as reply:
            if reply.status == 200 and (await reply.json())["ready"] == count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{function} never had {count} ready replicas")


def jsonable(raw: bytes) -> Any:
    return json.loads(raw)


async def routed(
    http: aiohttp.ClientSession,
    api: ServiceProcess,
    agent_events: EventProducer,
    replica: ReplicaFactory,
    name: str,
    *,
    limit: int = 0,
    **spec: object,
) -> Replica:
    """A function deployed with `spec`, one test replica of it ready and routed."""
    await deploy(http, api, name, **spec)
    server = await replica(f"{name}-r1")
    await announce(agent_events, name, server, limit=limit)
    await wait_routed(http, api, name, 1)
    return server


async def raw_call(port: int, request: bytes, timeout_s: float = 10.0) -> bytes:
    """Send bytes as they are to 127.0.0.1:port; the response that came back (its head,
    and its body by Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", head)
            return head + await reader.readexactly(int(length.group(1)) if length else 0)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> dict[str, object]:
    found: dict[str, object] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return found


def get(path: str, *headers: bytes) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"
