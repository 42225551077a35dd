"""The api's public listener. A request for `/fn/...` is parsed by llhttp (httptools) and
served by the request path directly; any other request hands its connection, from that
request's first byte on, to aiohttp's server (the control plane, /metrics, the probes).

aiohttp's server costs about 120 us of CPU per proxied call on this machine (a third of
what the request path may cost, README "Request path"); the lean front keeps every check
of the request path and the server's limits: line, header and body sizes, the keep-alive
idle timeout (which also bounds a slow request head), and a hang-up cancelling the call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httptools
from multidict import CIMultiDict

from services.api.forwarding import function_segment
from services.api.front_reply import JSON, Reply, json_error
from services.api.incoming import Headers, Incoming, Sink
from services.common.logs import StructLog
from services.common.runtime import MAX_HEADERS, MAX_LINE_BYTES

LEAN_TARGET = b"/fn/"
BODY_HIGH_WATER = 256 * 1024
"""Request body bytes held unread before reading from the client pauses."""
AHEAD_LIMIT = 64 * 1024
"""Bytes of a next request held while this one is served."""

Serve = Callable[[Incoming, Sink], Awaitable[None]]


class Refused(Exception):
    """A request the front answers itself (status, message) and closes the connection on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Pipelined(Exception):
    """A next request in the same segment as the end of this one: not taken."""


class Front:
    """Makes each connection's protocol, and keeps the lean ones to close on shutdown."""

    def __init__(
        self,
        serve: Serve,
        *,
        keepalive_s: float,
        log: StructLog,
        fallback: Callable[[], asyncio.Protocol] | None = None,
    ) -> None:
        self.serve = serve
        self.keepalive_s = keepalive_s
        self.log = log
        self.fallback = fallback
        self.connections: set[Connection] = set()

    def protocol(self, fallback: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """The listener's protocol factory; `fallback` makes aiohttp's for other requests."""
        self.fallback = fallback
        return lambda: Connection(self)

    async def shutdown(self, timeout_s: float = 5.0) -> None:
        """Close idle connections at once, and the others once their call ends (or later)."""
        busy = [c.task for c in self.connections if c.task is not None]
        for conn in list(self.connections):
            if conn.task is None:
                conn.close()
        if busy:
            await asyncio.wait(busy, timeout=timeout_s)
        for conn in list(self.connections):
            conn.close()


class Connection(asyncio.Protocol):
    """One client connection while the lean front holds it."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.ahead = bytearray()
        """Bytes received before a request's parser takes them (the next request's)."""
        self.request: Request | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.drained: asyncio.Future[None] | None = None
        self.reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.front.connections.add(self)
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self._stop_timer()
        if self.task is not None:
            self.task.cancel()
        if self.request is not None:
            self.request.wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    def data_received(self, data: bytes) -> None:
        request = self.request
        if request is not None and not request.complete:
            request.feed(data)
            return
        self.ahead += data
        if request is None:
            self._begin()
        elif len(self.ahead) > AHEAD_LIMIT:
            self.pause()

    def eof_received(self) -> bool:
        return False  # a client that stops sending has gone: its call is cancelled

    def _begin(self) -> None:
        """A request starts with the bytes ahead: served here when it is for /fn/."""
        end = self.ahead.find(b"\n")
        if end < 0:
            if len(self.ahead) > MAX_LINE_BYTES:
                self._handover()  # aiohttp says what is wrong with it
            return
        parts = bytes(self.ahead[:end]).split(b" ")
        if len(parts) < 2 or not parts[1].startswith(LEAN_TARGET):
            self._handover()
            return
        data, self.ahead = bytes(self.ahead), bytearray()
        self.request = Request(self)
        self.request.feed(data)

    def _handover(self) -> None:
        assert self.transport is not None and self.front.fallback is not None
        self._stop_timer()
        self.front.connections.discard(self)
        handler = self.front.fallback()
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        if not self.reading:
            self.transport.resume_reading()
        if self.ahead:
            handler.data_received(bytes(self.ahead))

    def start(self, request: Request, incoming: Incoming) -> None:
        self._stop_timer()
        self.task = self.loop.create_task(self._serve(request, incoming))

    async def _serve(self, request: Request, incoming: Incoming) -> None:
        reply = Reply(self, incoming.method, request.version, request.keep_alive)
        try:
            await self.front.serve(incoming, reply)
        except asyncio.CancelledError:
            return
        except ConnectionError:  # the client went while its answer was written
            self.abort()
            return
        except Exception as failure:  # an answer of 500, never a dead connection unexplained
            function = function_segment(incoming.raw_path)[:64]
            self.front.log.error("the request path failed", function=function, error=repr(failure))
            if reply.started:
                self.abort()
                return
            with contextlib.suppress(ConnectionError):
                await reply.whole(500, "", JSON, json_error("the request path failed"))
        finally:
            self.task = None
        self._after(request, reply)

    def _after(self, request: Request, reply: Reply) -> None:
        """Ready for the next request, or closed when this one may not be followed."""
        self.request = None
        if not (reply.keep_alive and request.keep_alive and request.complete) or request.failed:
            self.close()
            return
        self._idle()
        if not self.reading:
            self.resume()
        if self.ahead:
            self._begin()

    def refuse(self, refused: Refused) -> None:
        """Answer a request the front cannot take, and close."""
        if self.task is not None:
            self.abort()
            return
        body = json_error(str(refused))
        reply = Reply(self, "GET", "1.1", keep_alive=False)
        self.write(reply.head(refused.status, "", JSON, len(body)) + body)
        self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        if self.drained is not None:
            await self.drained

    def pause(self) -> None:
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def resume(self) -> None:
        if not self.reading and self.transport is not None and not self.transport.is_closing():
            self.reading = True
            self.transport.resume_reading()

    def close(self) -> None:
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    def _idle(self) -> None:
        """A connection without a call is closed after the keep-alive timeout; the timer runs
        until a request's head has ended, so a slow head is bounded too."""
        self._stop_timer()
        self.timer = self.loop.call_later(self.front.keepalive_s, self.close)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Request:
    """One request being parsed: its head checked against the server's limits, its body
    held for the request path to read."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parser = httptools.HttpRequestParser(self)
        self.url = bytearray()
        self.headers: Headers = []
        self.head_bytes = 0
        self.messages = 0
        self.started = False
        self.complete = False
        self.failed = False
        self.version = "1.1"
        self.keep_alive = False
        self.expects_continue = False
        self.body = bytearray()
        self.waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        if not self.started:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _Pipelined):
                self.keep_alive = False  # answered, then the connection ends
                return
            self._fail(error.__context__ if isinstance(error.__context__, Refused) else None)
        except httptools.HttpParserUpgrade:
            self._fail(Refused(501, "protocol upgrades (WebSocket) are not proxied"))
        except httptools.HttpParserError as error:
            self._fail(Refused(400, f"not a valid HTTP/1.x request: {error}"))

    def _fail(self, refused: Refused | None) -> None:
        self.failed = True
        self.wake()
        if refused is not None:
            self.conn.refuse(refused)
        elif self.conn.task is None:
            self.conn.close()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def on_message_begin(self) -> None:
        self.messages += 1
        if self.messages > 1:
            raise _Pipelined

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_LINE_BYTES:
            raise Refused(414, f"the request target is over {MAX_LINE_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            raise Refused(431, f"more than {MAX_HEADERS} request headers")
        if len(name) + len(value) > MAX_LINE_BYTES:
            raise Refused(431, f"a request header over {MAX_LINE_BYTES} bytes")
        self.headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self.started = True
        parser = self.parser
        if parser.should_upgrade():
            raise Refused(501, "protocol upgrades (WebSocket) are not proxied")
        self.version = parser.get_http_version()
        self.keep_alive = parser.should_keep_alive()
        headers = CIMultiDict(self.headers)
        expect = headers.get("Expect", "").lower()
        self.expects_continue = expect == "100-continue" and self.version == "1.1"
        length = headers.get("Content-Length")
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        declared = int(length) if length is not None and not chunked else None
        transport = self.conn.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        incoming = Incoming(
            method=parser.get_method().decode("ascii"),
            raw_path=self.url.decode("latin-1"),
            headers=headers,
            remote=str(peer[0]) if peer else "",
            host=headers.get("Host", ""),
            scheme="http",
            content_length=declared,
            has_body=chunked or bool(declared),
            pieces=self.pieces,
        )
        self.conn.start(self, incoming)

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > BODY_HIGH_WATER:
            self.conn.pause()
        self.wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.wake()

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives; ConnectionResetError when the client goes before its end."""
        if self.expects_continue and not self.body and not self.complete:
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            if self.body:
                piece, self.body = bytes(self.body), bytearray()
                self.conn.resume()
                yield piece
            elif self.complete:
                return
            elif self.failed or self.conn.transport is None or self.conn.transport.is_closing():
                raise ConnectionResetError("the client's body ended early")
            else:
                self.waiter = self.conn.loop.create_future()
                await self.waiter
