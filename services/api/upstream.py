"""A lean HTTP/1.1 client for the request path: one asyncio protocol per connection,
idle keep-alive connections pooled per replica endpoint.

aiohttp's client costs about as much CPU per request as the whole rest of the proxy; the
request path needs only a small part of it (IP-literal endpoints, no redirects, no cookies,
no decompression), so it has its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from services.api.response_head import ResponseHead, chunk_size, parse_head
from services.api.response_head import UpstreamError as UpstreamError

HIGH_WATER = 1 << 20
"""Buffered response bytes at which reading from the replica pauses (back-pressure)."""
MAX_HEAD_BYTES = 64 * 1024
CONNECT_PACE = 8
"""Fresh connections to one replica that may be opening at once: a replica that accepts
slowly (busybox httpd listens with a backlog of 9) would see its accept queue overflow,
and each dropped handshake costs the kernel's 1 s SYN retransmit."""
PACE_HOLD_S = 0.05
"""Longest a fresh connection holds its place: until its response head arrives, or this."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSent(UpstreamError):
    """Nothing of the request reached the replica (connection refused or failed first)."""


class Closed(UpstreamError):
    """The replica closed the connection."""


class NoResponse(Closed):
    """The replica closed the connection after the request was sent, before one byte of a
    response: a safe request can go to another replica."""


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise Closed("the replica closed the connection while the request was sent")
        self.transport.write(data)
        if self.write_paused:
            self.drained = self.loop.create_future()
            await self.drained

    async def _more(self) -> None:
        if self.closed:
            raise Closed("the replica closed the connection before the response ended")
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def read_until(self, separator: bytes, limit: int) -> bytes:
        start = 0
        while True:
            found = self.buffer.find(separator, start)
            if found >= 0:
                end = found + len(separator)
                data = bytes(self.buffer[:end])
                del self.buffer[:end]
                return data
            if len(self.buffer) > limit:
                raise UpstreamError(f"a response line or head longer than {limit} bytes")
            start = max(0, len(self.buffer) - len(separator) + 1)
            await self._more()

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._more()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_some(self, at_most: int) -> bytes:
        """Buffered bytes (waiting for some); b"" once the replica closed."""
        while not self.buffer:
            if self.closed:
                return b""
            await self._more()
        data = bytes(self.buffer[:at_most])
        del self.buffer[:at_most]
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class UpstreamResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    content_length: int | None
    body: bytes | None
    """The whole body when it was small and of known length; otherwise read `chunks()`."""
    _connection: _Connection
    _framing: str
    _remaining: int
    _done: Callable[[bool], None] = field(repr=False)

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._connection
        if self._framing == "length":
            while self._remaining > 0:
                data = await conn.read_some(min(self._remaining, 1 << 16))
                if not data:
                    raise Closed("the replica closed the connection before the response ended")
                self._remaining -= len(data)
                yield data
        elif self._framing == "chunked":
            while True:
                size = chunk_size(await conn.read_until(b"\r\n", 4096))
                if size == 0:
                    while await conn.read_until(b"\r\n", MAX_HEAD_BYTES) != b"\r\n":
                        pass
                    break
                while size > 0:
                    data = await conn.read_some(min(size, 1 << 16))
                    if not data:
                        raise Closed("the replica closed the connection inside a chunk")
                    size -= len(data)
                    yield data
                if await conn.read_exactly(2) != b"\r\n":
                    raise UpstreamError("a chunk not followed by CRLF")
        elif self._framing == "close":
            while data := await conn.read_some(1 << 16):
                yield data
        self._done(True)

    def release(self, reusable: bool) -> None:
        self._done(reusable)


@dataclass
class Upstream:
    """Idle connections per (host, port), reused while the replica keeps them alive."""

    connect_timeout_s: float = 2.0
    idle_per_endpoint: int = 64
    _idle: dict[tuple[str, int], list[_Connection]] = field(default_factory=dict)
    _addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    _pacing: dict[tuple[str, int], asyncio.Semaphore] = field(default_factory=dict)

    def address(self, endpoint: str) -> tuple[str, int]:
        found = self._addresses.get(endpoint)
        if found is None:
            parts = urlsplit(endpoint)
            if parts.scheme != "http" or parts.hostname is None:
                raise NotSent(f"unsupported replica endpoint {endpoint!r}")
            found = self._addresses[endpoint] = (parts.hostname, parts.port or 80)
        return found

    async def _connect(self, address: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(lambda: _Connection(loop), *address)
        except (OSError, TimeoutError) as failure:
            raise NotSent(f"could not connect to {address[0]}:{address[1]}: {failure}") from None
        return conn

    def _give_back(self, address: tuple[str, int], conn: _Connection, reusable: bool) -> None:
        idle = self._idle.setdefault(address, [])
        if reusable and not conn.closed and not conn.buffer and len(idle) < self.idle_per_endpoint:
            idle.append(conn)
        else:
            conn.close()

    async def request(
        self,
        endpoint: str,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
        *,
        buffer_limit: int,
    ) -> UpstreamResponse:
        """Send one request and read the response head (and a small body whole).

        A pooled connection the replica had closed meanwhile is replaced and the request
        sent again, but only when the body is bytes (replayable); otherwise the error
        surfaces. `NotSent` means no byte of the request reached the replica."""
        address = self.address(endpoint)
        host = f"{address[0]}:{address[1]}"
        head = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
        head.extend(f"{k}: {v}\r\n" for k, v in headers)
        if isinstance(body, bytes):
            head.append(f"Content-Length: {len(body)}\r\n\r\n")
        elif body is None:
            empty = method in ("POST", "PUT", "PATCH")
            head.append("Content-Length: 0\r\n\r\n" if empty else "\r\n")
        else:
            head.append("Transfer-Encoding: chunked\r\n\r\n")
        head_bytes = "".join(head).encode("latin-1")
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            try:
                return await self._exchange(address, conn, method, head_bytes, body, buffer_limit)
            except NotSent:
                continue
            except NoResponse:
                # The replica closed this idle connection as the request went out: only a
                # safe request is sent again, as Go's and browsers' clients do.
                if method not in SAFE_METHODS or not isinstance(body, bytes | None):
                    raise
        async with self._paced(address):
            conn = await self._connect(address)
            return await self._exchange(address, conn, method, head_bytes, body, buffer_limit)

    @contextlib.asynccontextmanager
    async def _paced(self, address: tuple[str, int]) -> AsyncIterator[None]:
        """A place among the fresh connections to a replica that may be opening at once,
        held until the response head arrives or PACE_HOLD_S passes."""
        pace = self._pacing.get(address)
        if pace is None:
            pace = self._pacing[address] = asyncio.Semaphore(CONNECT_PACE)
        await pace.acquire()
        held = [True]

        def release() -> None:
            if held[0]:
                held[0] = False
                pace.release()

        timer = asyncio.get_running_loop().call_later(PACE_HOLD_S, release)
        try:
            yield
        finally:
            timer.cancel()
            release()

    async def _exchange(
        self,
        address: tuple[str, int],
        conn: _Connection,
        method: str,
        head: bytes,
        body: bytes | AsyncIterator[bytes] | None,
        buffer_limit: int,
    ) -> UpstreamResponse:
        try:
            try:
                await conn.write(head + body if isinstance(body, bytes) else head)
            except Closed:
                raise NotSent("the replica had closed the connection") from None
            if body is not None and not isinstance(body, bytes):
                async for piece in body:
                    if piece:
                        await conn.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await conn.write(b"0\r\n\r\n")
            return await self._read_response(address, conn, method, buffer_limit)
        except BaseException:
            conn.close()
            raise

    async def _read_response(
        self, address: tuple[str, int], conn: _Connection, method: str, buffer_limit: int
    ) -> UpstreamResponse:
        head = await _read_head(conn)
        keep_alive = head.keep_alive
        framing, length = head.framing(method)
        if framing == "close":
            keep_alive = False

        def done(reusable: bool) -> None:
            self._give_back(address, conn, reusable and keep_alive)

        response = UpstreamResponse(
            status=head.status,
            reason=head.reason,
            headers=head.headers,
            content_length=length,
            body=None,
            _connection=conn,
            _framing=framing,
            _remaining=length or 0,
            _done=done,
        )
        if framing == "none":
            response.body = b""
            done(True)
        elif framing == "length" and length is not None and length <= buffer_limit:
            response.body = await conn.read_exactly(length)
            response._remaining = 0
            done(True)
        return response

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


async def _read_head(conn: _Connection) -> ResponseHead:
    """The first final response head (1xx interim responses other than 101 are skipped)."""
    first = True
    while True:
        try:
            raw = await conn.read_until(b"\r\n\r\n", MAX_HEAD_BYTES)
        except Closed:
            if first and not conn.buffer:
                raise NoResponse("the replica closed the connection without answering") from None
            raise
        first = False
        head = parse_head(raw)
        if not 100 <= head.status < 200 or head.status == 101:
            return head
