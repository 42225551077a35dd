"""The api's lean front: calls to /fn/ are served without aiohttp's server, every other
request hands the connection to it, and the front keeps the server's limits (head sizes,
upgrades, Expect, HTTP/1.0 framing, the keep-alive idle timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from events.bus import EventProducer
from events.settings import BusSettings
from tests.api.conftest import (
    TOKEN,
    ReplicaFactory,
    api_process,
    raw_call,
    routed,
    status_of,
)
from tests.support.service_process import ServiceProcess

AUTHORIZATION = f"Authorization: Bearer {TOKEN}".encode()


async def answer_on(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """The next response on a kept-alive connection: status, head and body (by length)."""
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", head)
        assert length is not None, head
        body = await reader.readexactly(int(length.group(1)))
    return int(head.split(b" ", 2)[1]), head, body


def request(path: str, *headers: bytes, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}".encode(), b"Host: 127.0.0.1", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_one_connection_carries_calls_and_control_plane_requests_in_either_order(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "mixed")
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        for path, auth in [
            ("/fn/mixed/one", b""),  # taken by the lean front
            ("/fn/mixed/two", b""),  # on the same connection
            ("/v1/functions/mixed", AUTHORIZATION),  # handed to aiohttp's server
            ("/fn/mixed/three", b""),  # served by the request path through aiohttp's
        ]:
            writer.write(request(path, *([auth] if auth else [])))
            status, head, body = await answer_on(reader)
            assert status == 200, (path, head, body)
            found = json.loads(body)
            if path.startswith("/fn/"):
                assert found["path"] == path.removeprefix("/fn/mixed"), found
                assert found["replica"] == "mixed-r1"
            else:
                assert found["name"] == "mixed", found
    finally:
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:  # a connection that begins with a probe
        for path in ["/healthz", "/fn/mixed/four"]:
            writer.write(request(path))
            status, head, _ = await answer_on(reader)
            assert status == 200, (path, head)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("sent", "status", "said"),
    [
        (request("/fn/x/", *[f"X-H{n}: v".encode() for n in range(101)]), 431, "headers"),
        (request("/fn/x/", b"X-Long: " + b"v" * 9000), 431, "header over"),
        (request("/fn/x/" + "a" * 9000), 414, "target"),
        (request("/fn/x/", b"Connection: Upgrade", b"Upgrade: websocket"), 501, "upgrade"),
        (b"GET /fn/x/ HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", 400, "HTTP/1.x"),
        (b"GET /fn/x/\r\n\r\n", 505, "HTTP/1.0 or HTTP/1.1"),
        (
            request(
                "/fn/x/",
                b"Transfer-Encoding: identity",
                b"Transfer-Encoding: chunked",
                method="POST",
            )
            + b"5\r\nhello\r\n0\r\n\r\n",
            400,
            "Transfer-Encoding",
        ),
    ],
)
async def test_heads_past_the_limits_get_clear_errors_and_the_connection_closes(
    api: ServiceProcess, sent: bytes, status: int, said: str
) -> None:
    answer = await raw_call(api.http_port, sent)
    assert status_of(answer) == status, answer[:300]
    assert b"\r\nConnection: close\r\n" in answer
    assert said in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


async def test_expect_continue_and_http_1_0_framing(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "framed", max_body_bytes=1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        writer.write(
            request(
                "/fn/framed/",
                b"Expect: 100-continue",
                b"Content-Length: 5",
                method="POST",
            )
        )
        async with asyncio.timeout(10):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        status, _, body = await answer_on(reader)
        assert status == 200 and json.loads(body)["body"] == "hello"
    finally:
        writer.close()
    too_big = request(
        "/fn/framed/", b"Expect: 100-continue", b"Content-Length: 5000", method="POST"
    )
    answer = await raw_call(api.http_port, too_big)
    assert status_of(answer) == 413 and b"100 Continue" not in answer, answer[:300]

    old = request("/fn/framed/stream?chunks=2&delay=0.05", version="1.0")
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        writer.write(old)
        async with asyncio.timeout(10):
            whole = await reader.read(-1)  # the body ends when the connection does
    finally:
        writer.close()
    head, _, body = whole.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower(), head
    assert body == b"chunk 0\nchunk 1\n"


async def test_pipelined_requests_get_the_first_answer_then_a_close(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    server = await routed(http, api, agent_events, replica, "piped")
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        writer.write(request("/fn/piped/first") + request("/fn/piped/second"))
        status, _, _ = await answer_on(reader)
        assert status == 200
        async with asyncio.timeout(10):
            assert await reader.read(-1) == b""
    finally:
        writer.close()
    assert [seen["path"] for seen in server.seen] == ["/first"]


@pytest.fixture
async def short_keepalive_api(bus: BusSettings, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    process = api_process(bus, tmp_path, SHOAL_API_KEEPALIVE_S="1")
    await process.start()
    yield process
    await process.stop()


async def test_idle_connections_and_slow_heads_are_closed_at_the_keepalive_timeout(
    short_keepalive_api: ServiceProcess,
) -> None:
    port = short_keepalive_api.http_port
    for sent in [b"", b"GET /fn/x/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(sent)
            async with asyncio.timeout(5):
                assert await reader.read(-1) == b""
        finally:
            writer.close()


async def closed_or_reset(reader: asyncio.StreamReader) -> bool:
    """Whether the api ends the connection (reading to its end, or a reset) within 10 s."""
    try:
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass
    return True


async def test_a_head_or_trailers_past_64_kib_are_refused_as_they_arrive(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        writer.write(b"GET /fn/x/ HTTP/1.1\r\nHost: a\r\nX-A: ")
        for _ in range(20):  # 160 KiB of one header value, in pieces: refused past 64 KiB
            writer.write(b"a" * 8192)
            await writer.drain()
            await asyncio.sleep(0.01)
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431"), head
    except ConnectionError:
        pass  # the refusal raced the flood; what matters is what follows
    finally:
        writer.close()
    server = await routed(http, api, agent_events, replica, "trailers")
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        writer.write(request("/fn/trailers/", b"Transfer-Encoding: chunked", method="POST"))
        writer.write(b"5\r\nhello\r\n0\r\nX-T: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(20):
                writer.write(b"t" * 8192)
                await writer.drain()
                await asyncio.sleep(0.01)
        assert await closed_or_reset(reader)
    finally:
        writer.close()
    assert server.seen == []
    async with http.get(f"{api.url}/healthz") as reply:
        assert reply.status == 200


async def test_a_caller_that_reads_no_answer_holds_no_slot(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "unread", limit=1, request_timeout_s=4)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    stuck.connect(("127.0.0.1", api.http_port))
    try:
        for _ in range(8):  # answers of 200 KB each, never read
            stuck.sendall(request("/fn/unread/big?bytes=200000"))
            await asyncio.sleep(0.1)
        for _ in range(3):
            started = asyncio.get_running_loop().time()
            async with http.get(f"{api.url}/fn/unread/") as reply:
                assert reply.status == 200, await reply.text()
            assert asyncio.get_running_loop().time() - started < 2
    finally:
        stuck.close()


async def test_an_early_answer_reaches_a_caller_still_sending_its_body(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    server = await routed(http, api, agent_events, replica, "early", max_body_bytes=1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        writer.write(request("/fn/early/", b"Content-Length: 4194304", method="POST"))
        for _ in range(64):
            writer.write(b"b" * 65536)
            await writer.drain()
        status, head, body = await answer_on(reader)
        assert status == 413 and b"Connection: close" in head, head
        assert json.loads(body)["limit"] == 1000
    finally:
        writer.close()
    assert server.seen == []


async def test_headers_that_are_not_utf_8_get_4xx_not_500(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "secretive", private=True)
    answer = await raw_call(
        api.http_port,
        request("/fn/secretive/", b"Authorization: Bearer \xff\xfe", b"Connection: close"),
    )
    assert status_of(answer) == 401, answer[:300]
    await routed(http, api, agent_events, replica, "open")
    answer = await raw_call(
        api.http_port, request("/fn/open/", b"X-Shoal-Peer: \xff", b"Connection: close")
    )
    assert status_of(answer) == 200, answer[:300]
