"""The request path under abuse and failure: every limit holds, every timeout frees what
the call held, bad answers and bad requests get clear errors, and replicas that refuse
connections are ejected while the call moves on."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from events.bus import EventProducer
from tests.api.conftest import (
    AUTH,
    ReplicaFactory,
    announce,
    announce_at,
    body_of,
    deploy,
    get,
    raw_call,
    routed,
    status_of,
    wait_routed,
)
from tests.support.ports import free_port
from tests.support.service_process import ServiceProcess


@pytest.fixture
async def bad_replica() -> AsyncIterator[int]:
    """A replica that answers every request with status 9999."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 9999 Odd\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    yield port
    server.close()
    await server.wait_closed()


async def served_within(http: aiohttp.ClientSession, url: str, seconds: float) -> None:
    started = time.monotonic()
    async with http.get(url) as reply:
        assert reply.status == 200, await reply.text()
    assert time.monotonic() - started < seconds


async def test_a_client_that_hangs_up_frees_its_slot(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "hangup", limit=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5), http.get(f"{api.url}/fn/hangup/slow?s=30"):
            pass
    await served_within(http, f"{api.url}/fn/hangup/", 3)
    async with http.get(f"{api.url}/metrics", headers=AUTH) as reply:
        metrics = await reply.text()
    assert 'shoal_api_requests_total{code="499",function="hangup"} 1.0' in metrics


async def test_a_slow_body_holds_no_slot_and_times_out_with_408(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    server = await routed(
        http, api, agent_events, replica, "slowbody", limit=1, request_timeout_s=2
    )
    head = b"POST /fn/slowbody/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
    slow = asyncio.create_task(raw_call(api.http_port, head))
    await asyncio.sleep(0.3)
    await served_within(http, f"{api.url}/fn/slowbody/", 1.5)
    answer = await slow
    assert status_of(answer) == 408, answer[:200]
    assert [seen["method"] for seen in server.seen] == ["GET"]


async def test_a_body_over_the_limit_gets_413_before_the_replica_sees_anything(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    server = await routed(http, api, agent_events, replica, "small", max_body_bytes=1000)
    async with http.post(f"{api.url}/fn/small/", data=b"x" * 5000) as reply:
        assert reply.status == 413
        assert (await reply.json())["limit"] == 1000

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 400

    async with http.post(f"{api.url}/fn/small/", data=chunks()) as reply:
        assert reply.status == 413
    async with http.post(f"{api.url}/fn/small/", data=b"z" * 1000) as reply:
        assert reply.status == 200
    assert [len(seen["body"]) for seen in server.seen] == [1000]


async def test_a_replica_answering_status_9999_gives_502(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    bad_replica: int,
) -> None:
    await deploy(http, api, "odd")
    await announce_at(agent_events, "odd", "odd-r1", f"http://127.0.0.1:{bad_replica}")
    await wait_routed(http, api, "odd", 1)
    async with http.get(f"{api.url}/fn/odd/") as reply:
        assert reply.status == 502
        assert "100-599" in (await reply.json())["error"]


async def test_bad_header_values_and_dot_segments_get_400_and_paths_pass_raw(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    server = await routed(http, api, agent_events, replica, "paths")
    port = api.http_port
    answer = await raw_call(port, get("/fn/paths/", "X-Name: \u2603".encode()))
    assert status_of(answer) == 400 and "X-Name" in str(body_of(answer)["error"])
    for path in ("/fn/paths/a/../secret", "/fn/paths/%2e%2E/secret", "/fn/paths/./x"):
        answer = await raw_call(port, get(path))
        assert status_of(answer) == 400, (path, answer[:200])
        assert "dot segments" in str(body_of(answer)["error"])
    answer = await raw_call(port, get("/fn/paths/%66/secret%2Fx?q=%20"))
    assert status_of(answer) == 200, answer[:300]
    assert server.seen[-1]["raw_path"] == "/%66/secret%2Fx?q=%20"
    assert len(server.seen) == 1


async def test_a_hung_replica_gets_504_at_the_request_timeout_with_the_slot_freed(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    timeouts = {"request_timeout_s": 1, "response_start_timeout_s": 0.5}
    await routed(http, api, agent_events, replica, "hung", limit=1, **timeouts)
    started = time.monotonic()
    async with http.get(f"{api.url}/fn/hung/slow?s=30") as reply:
        assert reply.status == 504
        assert "did not start its response" in (await reply.json())["error"]
    assert 0.4 < time.monotonic() - started < 1.5
    await served_within(http, f"{api.url}/fn/hung/", 1.5)


async def test_a_response_that_pauses_past_the_idle_timeout_is_cut(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "pauses", idle_timeout_s=0.5)
    async with http.get(f"{api.url}/fn/pauses/stream?chunks=3&delay=0.1") as reply:
        assert await reply.read() == b"chunk 0\nchunk 1\nchunk 2\n"
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(f"{api.url}/fn/pauses/stream?chunks=3&delay=2") as reply:
            await reply.read()


async def test_refusing_replicas_are_ejected_and_calls_go_to_the_live_one(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await deploy(http, api, "eject")
    for n in range(4):
        await announce_at(
            agent_events, "eject", f"eject-dead-{n}", f"http://127.0.0.1:{free_port()}"
        )
    live = await replica("eject-live")
    await announce(agent_events, "eject", live)
    await wait_routed(http, api, "eject", 5)
    for _ in range(20):
        async with http.post(f"{api.url}/fn/eject/", data=b"once") as reply:
            assert reply.status == 200, await reply.text()
    assert len(live.seen) == 20
    async with http.get(f"{api.url}/metrics", headers=AUTH) as reply:
        metrics = await reply.text()
    ejected = re.search(r'shoal_api_ejections_total\{function="eject"\} ([0-9.]+)', metrics)
    assert ejected is not None and float(ejected.group(1)) >= 4


async def test_a_head_call_returns_the_replicas_content_length(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "heads")
    for size in (12_345, 1_000_000):
        async with http.head(f"{api.url}/fn/heads/big?bytes={size}") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Length"] == str(size)


async def test_bodies_past_the_apis_budget_get_503_until_bytes_are_given_back(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    big = 40 << 20
    await routed(http, api, agent_events, replica, "heavy", max_body_bytes=big)
    head = f"POST /fn/heavy/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {big}\r\n"
    _, holder = await asyncio.open_connection("127.0.0.1", api.http_port)
    holder.write(head.encode() + b"\r\n")  # declares 40 MiB, sends none: they are held
    await holder.drain()
    await asyncio.sleep(0.3)
    refused = await raw_call(api.http_port, head.encode() + b"Connection: close\r\n\r\n")
    assert status_of(refused) == 503 and b"Retry-After: 1" in refused
    assert "request bodies" in str(body_of(refused)["error"])
    holder.close()
    await asyncio.sleep(0.3)
    whole = head.encode() + b"Connection: close\r\n\r\n" + b"x" * big
    assert status_of(await raw_call(api.http_port, whole, timeout_s=30)) == 200
