"""The api's public listener. A request for `/fn/...` is parsed by llhttp (httptools) and
served by the request path directly; any other request hands its connection, from that
request's first byte on, to aiohttp's server (the control plane, /metrics, the probes).

aiohttp's server cost about 120 us of CPU per proxied call on this machine (README,
"Choices beyond the given stack"); the lean front keeps every check
of the request path and the server's limits: line, header and body sizes, the keep-alive
idle timeout (which also bounds a slow request head), and a hang-up cancelling the call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.api.forwarding import function_segment
from services.api.front_reply import JSON, Reply, json_error
from services.api.front_request import Refused, Request
from services.api.incoming import Incoming, Sink, Whole
from services.common.logs import StructLog
from services.common.runtime import MAX_LINE_BYTES

LEAN_TARGET = b"/fn/"
AHEAD_LIMIT = 64 * 1024
"""Bytes of a next request held while this one is served."""
LINGER_S = 10.0
"""How long the rest of a body is read and dropped after an early answer (LINGER_BYTES;
aiohttp lingers as long)."""

Serve = Callable[[Incoming, Sink], Awaitable[None]]


class Front:
    """Makes each connection's protocol, and keeps the lean ones to close on shutdown."""

    def __init__(
        self,
        serve: Serve,
        *,
        keepalive_s: float,
        log: StructLog,
    ) -> None:
        self.serve = serve
        self.keepalive_s = keepalive_s
        self.log = log
        self.fallback: Callable[[], asyncio.Protocol] | None = None
        """Makes aiohttp's protocol, for a connection whose request is not for /fn/."""
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
        self.peer = ""
        """The client's address, as the request path tells the replica."""
        self.timer: asyncio.TimerHandle | None = None
        self.drained: asyncio.Future[None] | None = None
        self.reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
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
                await reply.whole(Whole(500, "", JSON, json_error("the request path failed")))
        finally:
            self.task = None
        self._after(request, reply)

    def _after(self, request: Request, reply: Reply) -> None:
        """Ready for the next request, or closed when this one may not be followed."""
        if not request.complete and not request.failed and not request.expects_continue:
            request.drop_rest()  # answered early: closed once the body is in (or later)
            self.timer = self.loop.call_later(LINGER_S, self.close)
            self.resume()
            return
        self.request = None
        if not (reply.keep_alive and request.keep_alive) or request.failed:
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
        """Wait until the client has taken what was written; one that takes nothing for
        the keep-alive timeout is cut off (it holds no slot, but holds the buffer)."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        if self.drained is not None:
            try:
                async with asyncio.timeout(self.front.keepalive_s):
                    await self.drained
            except TimeoutError:
                self.abort()
                raise ConnectionResetError("the client read nothing for too long") from None

    def ends(self) -> bool:
        """Whether the answer being written is the connection's last: the request's body
        has not all arrived (an early answer), or more came with it than may be taken."""
        request = self.request
        return request is None or not request.complete or not request.keep_alive

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
