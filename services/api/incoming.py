"""A call as the request path sees it, whichever server took it: the lean front
(`services.api.front`) or aiohttp's, for a connection that began with a control-plane
request. What it came with (`Incoming`) and where its answer goes (`Sink`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from multidict import MultiMapping

Headers = list[tuple[str, str]]


@dataclass(slots=True)
class Incoming:
    """One request: its head as the client sent it, and its body as it comes."""

    method: str
    raw_path: str
    """The request target exactly as sent (percent-encoding kept), query included."""
    headers: MultiMapping[str]
    remote: str
    host: str
    scheme: str
    content_length: int | None
    has_body: bool
    pieces: Callable[[], AsyncIterator[bytes]]
    """The body's bytes as they arrive (de-chunked)."""

    @classmethod
    def of(cls, request: web.Request) -> Incoming:
        """A request aiohttp's server took."""
        return cls(
            request.method,
            request.raw_path,
            request.headers,
            request.remote or "",
            request.host,
            request.scheme,
            request.content_length,
            request.body_exists,
            request.content.iter_any,
        )


@dataclass(slots=True)
class Whole:
    """A replica's answer read whole: written to the caller once the call has given back
    the replica's slot and its body bytes (a caller that reads slowly holds neither)."""

    status: int
    reason: str
    headers: Headers
    body: bytes
    length: int | None = None
    """The Content-Length a HEAD answer states."""

    @classmethod
    def of(cls, response: web.Response) -> Whole:
        """One of the request path's own answers (an error, a refusal)."""
        assert isinstance(response.body, bytes)
        return cls(response.status, response.reason, list(response.headers.items()), response.body)


Outcome = int | Whole
"""A call's end: the status of an answer already passed on (streamed), or one to write."""


class Sink(Protocol):
    """Where a response goes: written whole, or started and streamed."""

    async def whole(self, answer: Whole) -> None:
        """The response at once."""

    async def start(self, status: int, reason: str, headers: Headers, length: int | None) -> None:
        """The head of a response whose body follows (`length` None: not known)."""

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...

    def cut(self) -> None:
        """Drop the connection: a body that cannot be finished is never passed off as whole."""


class AiohttpSink:
    """A `Sink` over aiohttp's response, for a call that came through aiohttp's server."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def whole(self, answer: Whole) -> None:
        response = web.Response(
            status=answer.status, reason=answer.reason or None, body=answer.body
        )
        response.headers.extend(answer.headers)
        if answer.length is not None:
            response.headers["Content-Length"] = str(answer.length)
        self.response = response

    async def start(self, status: int, reason: str, headers: Headers, length: int | None) -> None:
        response = self.response = web.StreamResponse(status=status, reason=reason or None)
        response.headers.extend(headers)
        if length is not None:
            response.content_length = length
        await response.prepare(self.request)

    async def write(self, chunk: bytes) -> None:
        assert self.response is not None
        await self.response.write(chunk)

    async def end(self) -> None:
        assert self.response is not None
        await self.response.write_eof()

    def cut(self) -> None:
        if self.request.transport is not None:
            self.request.transport.abort()


def aiohttp_route(
    serve: Callable[[Incoming, Sink], Awaitable[None]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """`serve` as an aiohttp handler: for a call to /fn/ on a connection that began with
    another request (and so stays with aiohttp's server)."""

    async def route(request: web.Request) -> web.StreamResponse:
        sink = AiohttpSink(request)
        await serve(Incoming.of(request), sink)
        assert sink.response is not None
        return sink.response

    return route
