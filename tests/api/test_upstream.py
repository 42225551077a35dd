"""The request path's HTTP/1.1 client against real local servers: framing of every kind,
keep-alive reuse, replicas that close idle connections, and refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from services.api.upstream import Closed, NotSent, Upstream, UpstreamError
from tests.support.ports import free_port

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def raw_server(handler: RawHandler) -> tuple[asyncio.Server, str]:
    port = free_port()
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return head + await reader.readexactly(int(line.split(b":")[1]))
    return head


def replying(*responses: bytes, close_after: bool = False) -> RawHandler:
    """A server answering successive requests on a connection with `responses`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for response in responses:
                await read_request(reader)
                writer.write(response)
                await writer.drain()
            if not close_after:
                await reader.read()
        finally:
            writer.close()

    return handle


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    client = Upstream(connect_timeout_s=1.0)
    yield client
    client.close()


async def whole(response_chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in response_chunks])


async def test_chunked_response_is_decoded_and_connection_reused(upstream: Upstream) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await replying(chunked, chunked)(reader, writer)

    server, endpoint = await raw_server(handle)
    async with server:
        for _ in range(2):
            response = await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=4)
            assert response.status == 200
            assert response.body is None and response.content_length is None
            assert ("X-A", "1") in response.headers
            assert await whole(response.chunks()) == b"hello, world"
    assert connections == 1


async def test_length_close_delimited_head_and_no_body_responses(upstream: Upstream) -> None:
    server, endpoint = await raw_server(
        replying(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789",
            b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
            close_after=True,
        )
    )
    async with server:
        small = await upstream.request(endpoint, "POST", "/", [], b"x", buffer_limit=1024)
        assert (small.status, small.body) == (200, b"abc")
        empty = await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=1024)
        assert (empty.status, empty.body) == (204, b"")
        head = await upstream.request(endpoint, "HEAD", "/", [], None, buffer_limit=1024)
        assert (head.body, head.content_length) == (b"", 10)
        big = await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=4)
        assert big.body is None and big.content_length == 9
        assert await whole(big.chunks()) == b"123456789"
        rest = await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=1024)
        assert rest.content_length is None
        assert await whole(rest.chunks()) == b"until the end"


async def test_idle_connection_closed_by_replica_is_replaced(
    upstream: Upstream,
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server, endpoint = await raw_server(replying(answer, close_after=True))
    async with server:
        for pause, method in ((0.0, "GET"), (0.05, "POST"), (0.0, "HEAD")):
            first = await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=64)
            await asyncio.sleep(pause)
            second = await upstream.request(endpoint, method, "/", [], None, buffer_limit=64)
            assert first.body == b"ok"
            assert second.status == 200


async def test_streamed_request_body_is_sent_chunked(upstream: Upstream) -> None:
    received: list[bytes] = []

    async def echo(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(body=request.headers.get("Transfer-Encoding", "").encode())

    app = web.Application()
    app.router.add_post("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    async def parts() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"", b"two,", b"three"):
            yield piece

    try:
        response = await upstream.request(
            f"http://127.0.0.1:{port}", "POST", "/", [], parts(), buffer_limit=64
        )
        assert response.body == b"chunked"
        assert received == [b"one,two,three"]
    finally:
        await runner.cleanup()


async def test_refused_connection_is_not_sent_and_truncation_is_an_error(
    upstream: Upstream,
) -> None:
    with pytest.raises(NotSent):
        await upstream.request(
            f"http://127.0.0.1:{free_port()}", "GET", "/", [], None, buffer_limit=64
        )
    server, endpoint = await raw_server(
        replying(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", close_after=True)
    )
    async with server:
        response = await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=10)
        with pytest.raises(Closed):
            await whole(response.chunks())
    garbage, endpoint = await raw_server(replying(b"SSH-2.0-OpenSSH\r\n\r\n", close_after=True))
    async with garbage:
        with pytest.raises(UpstreamError, match=r"not an HTTP/1\.x response"):
            await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=10)


async def test_a_replica_that_left_routing_keeps_no_idle_connection(upstream: Upstream) -> None:
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")(reader, writer)
        closed.set()

    server, endpoint = await raw_server(handle)
    async with server:
        response = await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=64)
        assert response.body == b"ok"
        upstream.forget(endpoint)
        await asyncio.wait_for(closed.wait(), 5)
        assert not upstream._idle and not upstream._pacing and not upstream._addresses


async def test_a_switch_of_protocol_is_an_error_and_its_connection_is_not_kept(
    upstream: Upstream,
) -> None:
    server, endpoint = await raw_server(
        replying(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
    )
    async with server:
        with pytest.raises(UpstreamError, match="101"):
            await upstream.request(endpoint, "GET", "/", [], None, buffer_limit=64)
        assert not any(upstream._idle.values())
