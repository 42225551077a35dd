"""A lean HTTP/1.1 client for the request path: one asyncio protocol per connection,
responses parsed by llhttp (httptools), idle keep-alive connections pooled per replica.

aiohttp's client costs about as much CPU per request as the whole rest of the proxy; the
request path needs only a small part of it (IP-literal endpoints, no redirects, no cookies,
no decompression), so it has its own on top of the same parser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from services.api.reply import Closed as Closed
from services.api.reply import NoResponse as NoResponse
from services.api.reply import Reply
from services.api.reply import UpstreamError as UpstreamError

HIGH_WATER = 1 << 20
"""Buffered response bytes at which reading from the replica pauses (back-pressure)."""
CONNECT_PACE = 8
"""Fresh connections to one replica that may be opening at once: a replica that accepts
slowly (busybox httpd listens with a backlog of 9) would see its accept queue overflow,
and each dropped handshake costs the kernel's 1 s SYN retransmit."""
PACE_HOLD_S = 0.05
"""Longest a fresh connection holds its place: until its response head arrives, or this."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSent(UpstreamError):
    """Nothing of the request reached the replica (connection refused or failed first)."""


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.reply: Reply | None = None
        self.closed = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reply = self.reply
        if reply is None:
            self.close()  # bytes on an idle connection answer nothing: it is not reused
            return
        reply.feed(data)
        if len(reply.body) > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _ended(self) -> None:
        self.closed = True
        if self.reply is not None:
            self.reply.at_eof()
        self._wake()

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

    async def until(self, reply: Reply, ready: Callable[[Reply], bool]) -> None:
        """Wait for the reply to be `ready`; its parse or connection error is raised first."""
        while True:
            if reply.error is not None:
                raise reply.error
            if ready(reply):
                return
            if self.closed:
                raise Closed("the replica closed the connection")
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

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
    _reply: Reply
    _done: Callable[[bool], None] = field(repr=False)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (de-chunked); raises if it ends early or does not parse."""
        conn, reply = self._connection, self._reply
        while True:
            await conn.until(reply, Reply.has_data)
            if not reply.body:
                break
            data = bytes(reply.body)
            reply.body.clear()
            yield data
        self._done(True)

    def release(self, reusable: bool) -> None:
        self._done(reusable)


class _Place:
    """A place among the fresh connections opening to one replica, held until the
    response head arrives or PACE_HOLD_S passes (a slow answer does not block others)."""

    __slots__ = ("places", "timer")

    def __init__(self, places: asyncio.Semaphore) -> None:
        self.places = places
        self.timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            PACE_HOLD_S, self.leave
        )

    def leave(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.places.release()


@dataclass
class Upstream:
    """Idle connections per replica endpoint, reused while the replica keeps them alive."""

    connect_timeout_s: float = 2.0
    idle_per_endpoint: int = 64
    _idle: dict[str, list[_Connection]] = field(default_factory=dict)
    _addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Endpoints in use and where they are: only their connections are kept idle."""
    _pacing: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def address(self, endpoint: str) -> tuple[str, int]:
        found = self._addresses.get(endpoint)
        if found is None:
            parts = urlsplit(endpoint)
            if parts.scheme != "http" or parts.hostname is None:
                raise NotSent(f"unsupported replica endpoint {endpoint!r}")
            found = self._addresses[endpoint] = (parts.hostname, parts.port or 80)
        return found

    def forget(self, endpoint: str) -> None:
        """Drop what is kept for a replica that left routing (idle connections, pacing)."""
        self._addresses.pop(endpoint, None)
        for conn in self._idle.pop(endpoint, []):
            conn.close()
        self._pacing.pop(endpoint, None)

    async def _connect(self, address: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(lambda: _Connection(loop), *address)
        except (OSError, TimeoutError) as failure:
            raise NotSent(f"could not connect to {address[0]}:{address[1]}: {failure}") from None
        return conn

    def _give_back(self, endpoint: str, conn: _Connection, reusable: bool) -> None:
        reply, conn.reply = conn.reply, None
        fit = (
            reusable
            and reply is not None
            and reply.error is None
            and reply.complete
            and reply.keep_alive
            and reply.reusable
            and not conn.paused
            and not conn.closed
            and endpoint in self._addresses
        )
        idle = self._idle.setdefault(endpoint, []) if fit else []
        if fit and len(idle) < self.idle_per_endpoint:
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
        head = _request_head(method, target, address, headers, body)
        idle = self._idle.get(endpoint)
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            try:
                reply = await self._send(conn, method, head, body)
            except NotSent:
                continue
            except NoResponse:
                # The replica closed this idle connection as the request went out: only a
                # safe request is sent again, as Go's and browsers' clients do.
                if method not in SAFE_METHODS or not isinstance(body, bytes | None):
                    raise
                continue
            return await self._respond(endpoint, conn, reply, buffer_limit)
        pace = self._pacing.get(endpoint)
        if pace is None:
            pace = self._pacing[endpoint] = asyncio.Semaphore(CONNECT_PACE)
        await pace.acquire()
        place = _Place(pace)
        try:
            conn = await self._connect(address)
            reply = await self._send(conn, method, head, body)
        finally:
            place.leave()
        return await self._respond(endpoint, conn, reply, buffer_limit)

    async def _send(
        self, conn: _Connection, method: str, head: bytes, body: bytes | AsyncIterator[bytes] | None
    ) -> Reply:
        """Write the request and wait for the final response head."""
        reply = conn.reply = Reply(method)
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
            await conn.until(reply, Reply.has_head)
        except BaseException:
            conn.close()
            raise
        return reply

    async def _respond(
        self, endpoint: str, conn: _Connection, reply: Reply, buffer_limit: int
    ) -> UpstreamResponse:
        def done(reusable: bool) -> None:
            self._give_back(endpoint, conn, reusable)

        response = UpstreamResponse(
            status=reply.status,
            reason=reply.reason,
            headers=reply.headers,
            content_length=None if reply.chunked else reply.length,
            body=None,
            _connection=conn,
            _reply=reply,
            _done=done,
        )
        small = reply.length is not None and reply.length <= buffer_limit
        if small or (reply.complete and len(reply.body) <= buffer_limit):
            try:
                await conn.until(reply, Reply.has_ended)
            except BaseException:
                conn.close()
                raise
            response.body = bytes(reply.body)
            reply.body.clear()
            done(True)
        return response

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _request_head(
    method: str,
    target: str,
    address: tuple[str, int],
    headers: Iterable[tuple[str, str]],
    body: bytes | AsyncIterator[bytes] | None,
) -> bytes:
    head = [f"{method} {target} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n"]
    head.extend(f"{k}: {v}\r\n" for k, v in headers)
    if isinstance(body, bytes):
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
    elif body is None:
        empty = method in ("POST", "PUT", "PATCH")
        head.append("Content-Length: 0\r\n\r\n" if empty else "\r\n")
    else:
        head.append("Transfer-Encoding: chunked\r\n\r\n")
    return "".join(head).encode("latin-1")
