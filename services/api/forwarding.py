"""What the request path sends to a replica and returns to the caller (pure): the target
taken from the raw path as the client sent it, and headers cleaned of hop-by-hop ones,
of those a `Connection` header names, and of those the api sets itself."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
SET_BY_API = frozenset(
    {
        "host",
        "content-length",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-proto",
        "x-real-ip",
        "x-shoal-peer",
        "x-shoal-client",
        "x-shoal-host",
    }
)
"""Framed again, or said by the api about the caller; never taken from the caller."""
NOT_RETURNED = HOP_BY_HOP | {"content-length"}
DOT_SEGMENTS = frozenset({".", ".."})
PREFIX = "/fn/"


class BadRequest(ValueError):
    """What is wrong with a call, said to the caller with a 400."""


def connection_named(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The header names a `Connection` header lists: they concern this hop only."""
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


SHOAL_COOKIE_PREFIX = "shoal"
"""Cookies the api sets (the dashboard's) are named so; a replica never gets them."""


def without_shoal_cookies(value: str) -> str:
    """A `Cookie` header's value less Shoal's own cookies ('' when none is left)."""
    kept = [
        pair.strip()
        for pair in value.split(";")
        if pair.strip() and not pair.strip().lower().startswith(SHOAL_COOKIE_PREFIX)
    ]
    return "; ".join(kept)


def request_headers(
    headers: list[tuple[str, str]],
    *,
    peer: str,
    host: str,
    proto: str,
    shoal_credential: bool = False,
) -> list[tuple[str, str]]:
    """The headers the replica gets: the caller's end-to-end ones, each Latin-1 text, and
    the api's own account of the caller (`Forwarded`, `X-Forwarded-*`). Shoal's
    credentials never reach a function: `Authorization` when it carries a Shoal token
    (`shoal_credential`), and Shoal's cookies."""
    dropped = HOP_BY_HOP | SET_BY_API | connection_named(headers)
    if shoal_credential:
        dropped |= {"authorization"}
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower in dropped:
            continue
        if lower == "cookie":
            value = without_shoal_cookies(value)
            if not value:
                continue
        if not _latin1(value):
            raise BadRequest(f"the value of header {name!r} is not Latin-1 text")
        kept.append((name, value))
    if not _latin1(host) or any(c in host for c in '"\\'):
        raise BadRequest("the Host header is not a host name")
    kept += [
        ("X-Forwarded-For", peer),
        ("X-Forwarded-Host", host),
        ("X-Forwarded-Proto", proto),
        ("Forwarded", f'for="{peer}";host="{host}";proto={proto}'),
    ]
    return kept


def response_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The replica's headers the caller gets: none of this hop's, framing set again, and
    no cookie of Shoal's name (a function may not plant the dashboard's session)."""
    dropped = NOT_RETURNED | connection_named(headers)
    return [
        (name, value)
        for name, value in headers
        if name.lower() not in dropped
        and not (
            name.lower() == "set-cookie" and value.lstrip().lower().startswith(SHOAL_COOKIE_PREFIX)
        )
    ]


def function_segment(raw_path: str) -> str:
    """The `{name}` of `/fn/{name}/...`, percent-decoded ('' for another path)."""
    path = raw_path.partition("?")[0]
    if not path.startswith(PREFIX):
        return ""
    return unquote(path[len(PREFIX) :].partition("/")[0])


def upstream_target(raw_path: str) -> str:
    """The replica's request target: the raw path after `/fn/{name}` exactly as the client
    sent it (its percent-encoding kept), with its query, without a fragment (never part of
    a request). A dot segment, written plainly or percent-encoded, is refused: it would
    name something outside the function's path."""
    path, mark, query = raw_path.partition("#")[0].partition("?")
    if not path.startswith(PREFIX):
        raise BadRequest("a function's path starts with /fn/{name}")
    _, _, tail = path[len(PREFIX) :].partition("/")
    if any(unquote(segment) in DOT_SEGMENTS for segment in tail.split("/")):
        raise BadRequest("dot segments ('.' and '..') are refused in a function's path")
    target = f"/{tail}{mark}{query}"
    if not target.isascii() or not target.isprintable():
        raise BadRequest("the request target is not printable ASCII")
    return target
