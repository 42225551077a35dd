"""One request on the lean front, as llhttp (httptools) parses it: its head held to the
server's limits while it arrives (a head or trailers past MAX_HEAD_BYTES are refused before
they are whole), its framing checked, its body held for the request path to read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httptools
from multidict import CIMultiDict

from services.api.incoming import Headers, Incoming
from services.common.runtime import MAX_HEADERS, MAX_LINE_BYTES

if TYPE_CHECKING:
    from services.api.front import Connection

BODY_HIGH_WATER = 256 * 1024
"""Request body bytes held unread before reading from the client pauses."""
MAX_HEAD_BYTES = 64 * 1024
"""Bytes a request head may take, and chunk framing and trailers beyond 8 per body byte."""
LINGER_BYTES = 16 << 20
"""Body bytes read and dropped after an early answer, so the caller gets to read it."""
VERSIONS = frozenset({"1.0", "1.1"})


class Refused(Exception):
    """A request the front answers itself (status, message) and closes the connection on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Pipelined(Exception):
    """A next request in the same segment as the end of this one: not taken."""


class Request:
    """One request being parsed: its head checked against the server's limits, its body
    held for the request path to read."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parser = httptools.HttpRequestParser(self)
        self.url = bytearray()
        self.headers: Headers = []
        self.fed = 0
        self.head_bytes = 0
        """Bytes fed up to the feed that ended the head."""
        self.body_bytes = 0
        self.messages = 0
        self.started = False
        self.complete = False
        self.failed = False
        self.version = "1.1"
        self.keep_alive = False
        self.expects_continue = False
        self.body = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.dropping = False
        self.dropped_from = 0
        """Answered before its body ended: the rest is read and dropped (LINGER_BYTES)."""

    def feed(self, data: bytes) -> None:
        self.fed += len(data)
        framing = self.fed - self.head_bytes - self.body_bytes
        if self.started and framing > MAX_HEAD_BYTES + 8 * self.body_bytes:
            self._fail(Refused(400, "chunk framing or trailers far outweigh the body"))
            return
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
        if not self.started and not self.failed and self.fed > MAX_HEAD_BYTES:
            self._fail(Refused(431, f"a request head over {MAX_HEAD_BYTES} bytes"))

    def _fail(self, refused: Refused | None) -> None:
        self.failed = True
        self.wake()
        if self.dropping:  # answered already
            self.conn.close()
        elif refused is not None:
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
        self.head_bytes = self.fed
        parser = self.parser
        if parser.should_upgrade():
            raise Refused(501, "protocol upgrades (WebSocket) are not proxied")
        self.version = parser.get_http_version()
        if self.version not in VERSIONS:
            raise Refused(505, f"HTTP/{self.version} is not taken: HTTP/1.0 or HTTP/1.1")
        self.keep_alive = parser.should_keep_alive()
        headers = CIMultiDict(self.headers)
        expect = headers.get("Expect", "").lower()
        self.expects_continue = expect == "100-continue" and self.version == "1.1"
        length = headers.get("Content-Length")
        coding = ",".join(headers.getall("Transfer-Encoding", [])).strip().lower()
        chunked = bool(coding)
        if chunked and coding != "chunked":
            raise Refused(400, "a request's Transfer-Encoding may only be 'chunked'")
        declared = int(length) if length is not None and not chunked else None
        incoming = Incoming(
            method=parser.get_method().decode("ascii"),
            raw_path=self.url.decode("latin-1"),
            headers=headers,
            remote=self.conn.peer,
            host=headers.get("Host", ""),
            scheme="http",
            content_length=declared,
            has_body=chunked or bool(declared),
            pieces=self.pieces,
        )
        self.conn.start(self, incoming)

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.dropping:
            if self.body_bytes - self.dropped_from > LINGER_BYTES:
                self.conn.close()
            return
        self.body += body
        if len(self.body) > BODY_HIGH_WATER:
            self.conn.pause()
        self.wake()

    def on_message_complete(self) -> None:
        self.complete = True
        if self.dropping:
            self.conn.close()
        self.wake()

    def drop_rest(self) -> None:
        """Read the rest of the body and drop it (the caller may be sending it still, and
        would miss the answer if the connection were reset under it)."""
        self.dropping = True
        self.dropped_from = self.body_bytes
        self.body = bytearray()

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives; ConnectionResetError when the client goes before its end."""
        if self.expects_continue and not self.body and not self.complete:
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.expects_continue = False
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
