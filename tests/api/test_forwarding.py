"""What the request path sends on and returns, and when a replica leaves routing (pure)."""

from __future__ import annotations

import pytest

from services.api.forwarding import (
    BadRequest,
    request_headers,
    response_headers,
    upstream_target,
    without_shoal_cookies,
)
from services.api.routing import EJECT_BASE_S, EJECT_MAX_S, Route, RouteTable
from services.api.traffic import Target

LATEST = Target(1, strict=False)


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ("/fn/f", "/"),
        ("/fn/f/", "/"),
        ("/fn/f?x=1", "/?x=1"),
        ("/fn/f/a//b?x=%20", "/a//b?x=%20"),
        ("/fn/%66/secret", "/secret"),
        ("/fn/f/%66/secret%2Fx", "/%66/secret%2Fx"),
        ("/fn/f/a..b/.well-known", "/a..b/.well-known"),
    ],
)
def test_the_target_is_the_raw_path_after_the_function(raw: str, target: str) -> None:
    assert upstream_target(raw) == target


@pytest.mark.parametrize(
    "raw",
    ["/fn/f/..", "/fn/f/a/../b", "/fn/f/./a", "/fn/f/%2e%2E/x", "/fn/f/%2E/x", "/fn/f/\u00e9"],
)
def test_dot_segments_and_targets_that_are_not_ascii_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        upstream_target(raw)


def test_hop_by_hop_connection_named_and_forwarding_headers_are_the_apis() -> None:
    sent = request_headers(
        [
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("X-Forwarded-For", "10.0.0.9"),
            ("Forwarded", "for=10.0.0.9"),
            ("X-Real-IP", "10.0.0.9"),
            ("Accept", "*/*"),
        ],
        peer="127.0.0.1",
        host="api:8080",
        proto="http",
    )
    assert sent == [
        ("Accept", "*/*"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Host", "api:8080"),
        ("X-Forwarded-Proto", "http"),
        ("Forwarded", 'for="127.0.0.1";host="api:8080";proto=http'),
    ]


def test_shoal_credentials_never_reach_a_function_but_its_own_do() -> None:
    headers = [
        ("Authorization", "Bearer platform-token"),
        ("Cookie", "shoal_session=secret; theirs=1; SHOAL_other=2"),
        ("Accept", "*/*"),
    ]
    stripped = request_headers(headers, peer="p", host="h", proto="http", shoal_credential=True)
    assert [h for h in stripped if h[0] in ("Authorization", "Cookie")] == [("Cookie", "theirs=1")]
    theirs = request_headers(headers, peer="p", host="h", proto="http")
    assert ("Authorization", "Bearer platform-token") in theirs
    only_ours = [("Cookie", "shoal_session=secret")]
    assert not [
        h for h in request_headers(only_ours, peer="p", host="h", proto="x") if h[0] == "Cookie"
    ]
    assert without_shoal_cookies("a=1;b=2") == "a=1; b=2"


def test_a_function_cannot_set_a_cookie_of_shoals_name() -> None:
    returned = response_headers(
        [("Set-Cookie", "shoal_session=planted; Path=/ui"), ("Set-Cookie", "theirs=1")]
    )
    assert returned == [("Set-Cookie", "theirs=1")]


def test_a_header_value_that_is_not_latin1_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="X-Name"):
        request_headers([("X-Name", "\u2603")], peer="p", host="h", proto="http")
    with pytest.raises(BadRequest, match="Host"):
        request_headers([], peer="p", host='h"x', proto="http")


def test_a_responses_hop_headers_are_not_returned() -> None:
    returned = response_headers(
        [("Connection", "close, X-Private"), ("X-Private", "1"), ("Set-Cookie", "a=1")]
    )
    assert returned == [("Set-Cookie", "a=1")]


def route(rid: str) -> Route:
    return Route(replica_id=rid, revision=1, node="n", endpoint="http://127.0.0.1:1", limit=0)


def test_a_refusing_replica_leaves_routing_for_longer_at_each_refusal_in_a_row() -> None:
    table = RouteTable()
    dead, live = route("dead"), route("live")
    table.add("f", dead)
    table.add("f", live)
    assert dead.eject(10.0) == 10.0 + EJECT_BASE_S
    assert {table.pick("f", LATEST, now=10.5).replica_id for _ in range(4)} == {"live"}
    assert table.returns_at("f", 10.5) == 10.0 + EJECT_BASE_S
    assert table.returns_at("f", 11.0) is None
    assert dead.eject(11.0) == 11.0 + 2 * EJECT_BASE_S
    for _ in range(10):
        dead.eject(20.0)
    assert dead.ejected_until == 20.0 + EJECT_MAX_S
    dead.answered()
    assert dead.eject(60.0) == 60.0 + EJECT_BASE_S
