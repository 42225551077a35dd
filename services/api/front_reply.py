"""A response the lean front writes to its client: framed by Content-Length, chunked, or
(for HTTP/1.0) by the connection's end, and keep-alive unless either side says close."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Protocol

from services.api.incoming import Headers, Whole

NO_BODY = frozenset({204, 304})


class Wire(Protocol):
    """The client connection a reply is written to."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def abort(self) -> None: ...

    def ends(self) -> bool: ...


class Reply:
    """A response written to the client (`services.api.incoming.Sink`)."""

    def __init__(self, conn: Wire, method: str, version: str, keep_alive: bool) -> None:
        self.conn = conn
        self.method = method
        self.version = version
        self.keep_alive = keep_alive
        self.started = False
        self.chunked = False

    def head(self, status: int, reason: str, headers: Headers, length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason or phrase(status)}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        if status in NO_BODY or status < 200:
            pass
        elif length is not None:
            lines.append(f"Content-Length: {length}\r\n")
        elif self.version == "1.1":
            self.chunked = True
            lines.append("Transfer-Encoding: chunked\r\n")
        else:
            self.keep_alive = False  # a body of HTTP/1.0 ends when the connection does
        if self.keep_alive and self.conn.ends():
            self.keep_alive = False
        if not self.keep_alive:
            lines.append("Connection: close\r\n")
        elif self.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def whole(self, answer: Whole) -> None:
        self.started = True
        status, body = answer.status, answer.body
        length = len(body) if answer.length is None else answer.length
        head = self.head(status, answer.reason, answer.headers, length)
        sent = head if self.method == "HEAD" or status in NO_BODY else head + body
        self.conn.write(sent)
        await self.conn.drain()

    async def start(self, status: int, reason: str, headers: Headers, length: int | None) -> None:
        self.started = True
        self.conn.write(self.head(status, reason, headers, length))
        if self.method == "HEAD":
            self.chunked = False
        await self.conn.drain()

    async def write(self, chunk: bytes) -> None:
        if self.method == "HEAD" or not chunk:
            return
        self.conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if self.chunked else chunk)
        await self.conn.drain()

    async def end(self) -> None:
        if self.chunked:
            self.conn.write(b"0\r\n\r\n")
        await self.conn.drain()

    def cut(self) -> None:
        self.keep_alive = False
        self.conn.abort()


def json_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


JSON = [("Content-Type", "application/json; charset=utf-8")]
