"""How api instances share the replicas' concurrency limits, and relay calls (pure)."""

from __future__ import annotations

import json

import pytest

from services.api.forwarding import request_headers
from services.api.peers import members_of, told_members
from services.api.relay import peer_proof, relay_headers, relayed_by_peer
from services.api.routing import Route, RouteTable
from services.api.settings import Settings
from services.api.shares import Membership, slot_holders, slots_owned
from services.api.traffic import Target
from services.common.settings import SettingsError

LATEST = Target(1, strict=False)

REPLICAS = [f"r-{i:04x}" for i in range(200)]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7])
def test_the_members_shares_of_a_replica_add_up_to_its_limit_and_are_even(
    n: int, limit: int
) -> None:
    members = tuple(sorted(f"api-{i}" for i in range(n)))
    for replica in REPLICAS:
        shares = [slots_owned(replica, limit, members, m) for m in members]
        assert sum(shares) == limit
        assert max(shares) - min(shares) <= 1
        holders = slot_holders(replica, limit, members)
        assert set(holders) == {m for m, s in zip(members, shares, strict=True) if s}


def test_single_slots_spread_over_the_members() -> None:
    members = ("api-1", "api-2")
    owners = [slot_holders(r, 1, members)[0] for r in REPLICAS]
    assert 60 < owners.count("api-1") < 140


def test_an_instance_outside_the_membership_owns_nothing() -> None:
    assert slots_owned("r-1", 4, ("api-1", "api-2"), "api-3") == 0
    assert Membership("api-3").share("r-1", 4) == 0
    assert Membership("api-3").share("r-1", 0) == 0  # 0: unlimited, everyone's


def _table(me: str, members: dict[str, str], until: float = 100.0) -> RouteTable:
    table = RouteTable()
    table.reshare(Membership(me, members, 1), until=until)
    for replica in ("r-a", "r-b", "r-c"):
        table.add("f", Route(replica, 1, "n", f"http://127.0.0.1:1/{replica}", limit=1))
    return table


URLS = {"api-1": "http://127.0.0.1:8080", "api-2": "http://127.0.0.1:8180"}


def test_two_instances_together_never_exceed_a_replicas_limit() -> None:
    tables = [_table("api-1", URLS), _table("api-2", URLS)]
    taken: dict[str, int] = {}
    for table in tables:
        while (route := table.pick("f", LATEST, now=0.0)) is not None:
            route.outstanding += 1
            taken[route.replica_id] = taken.get(route.replica_id, 0) + 1
    assert taken == {"r-a": 1, "r-b": 1, "r-c": 1}


def test_no_limited_slot_is_used_past_the_lease_nor_before_a_membership() -> None:
    table = _table("api-1", {"api-1": URLS["api-1"]}, until=10.0)
    assert table.pick("f", LATEST, now=9.0) is not None
    assert table.pick("f", LATEST, now=10.5) is None
    table.add("f", Route("r-free", 1, "n", "http://127.0.0.1:2", limit=0))
    assert table.pick("f", LATEST, now=10.5).replica_id == "r-free"  # type: ignore[union-attr]
    fresh = RouteTable()
    fresh.reshare(Membership("api-1"), until=float("-inf"))
    fresh.add("g", Route("r-1", 1, "n", "http://127.0.0.1:1", limit=2))
    assert fresh.pick("g", LATEST, now=0.0) is None


def test_an_instance_without_a_slot_relays_to_one_that_has() -> None:
    members = ("api-1", "api-2")
    mine = next(r for r in REPLICAS if slot_holders(r, 1, members) == ["api-1"])
    theirs = next(r for r in REPLICAS if slot_holders(r, 1, members) == ["api-2"])
    me = Membership("api-1", URLS, 1)
    assert me.relay_to([(theirs, 1)], turn=0) == URLS["api-2"]
    assert me.relay_to([(theirs, 1), (mine, 1)], turn=0) is None
    assert me.relay_to([(theirs, 0)], turn=0) is None  # unlimited: served here
    assert Membership("api-1").relay_to([(theirs, 1)], turn=0) is None  # no membership


def test_what_members_say_of_themselves_is_checked() -> None:
    def said(instance: object, url: object) -> bytes:
        return json.dumps({"instance": instance, "url": url}).encode()

    members = [
        ("m1", said("api-1", "http://127.0.0.1:8080")),
        ("m2", b"not json"),
        ("m3", said("api-2", "file:///etc/passwd")),
        ("m4", said("api-3", "http://peer.example:80")),  # a name: the relay takes none
        ("m5", said("api-4", "http://user@10.0.0.1:80")),
        ("m6", said("api-5", "http://10.0.0.1:99999")),
        ("m7", said("", "http://127.0.0.1:1")),
        ("m8", json.dumps(["a list"]).encode()),
        ("m9", b"[" * 5000 + b"]" * 5000),  # nested past Python's recursion limit
        ("m10", b" " * (65 * 1024)),
        ("m11", None),
    ]
    assert members_of(members) == {"api-1#m1": "http://127.0.0.1:8080"}
    assert told_members(b"[1, 2]") == {}
    assert told_members(b"{" * 3000) == {}
    assert told_members(json.dumps(URLS).encode()) == URLS
    assert told_members(json.dumps({"a": "http://h.example:1"}).encode()) == {}


def test_two_instances_given_one_name_stay_two_members() -> None:
    said = json.dumps({"instance": "api-h-1", "url": "http://127.0.0.1:8080"}).encode()
    urls = members_of([("m1", said), ("m2", said)])
    assert sorted(urls) == ["api-h-1#m1", "api-h-1#m2"]
    shares = [Membership(me, urls, 1).share("r1", 4) for me in urls]
    assert shares == [2, 2]


def test_only_a_peer_with_the_proof_relays_and_its_headers_never_reach_a_replica() -> None:
    proof = peer_proof("the-api-token")
    assert proof != peer_proof("another-token") and "the-api-token" not in proof
    sent = relay_headers(
        [
            ("Host", "api.example"),
            ("Authorization", "Bearer caller"),
            ("X-Shoal-Peer", "forged"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
        ],
        proof=proof,
        client="10.1.2.3",
        host="api.example",
    )
    received = dict(sent)
    assert received["Authorization"] == "Bearer caller"
    assert "Host" not in received and "X-Hop" not in received
    assert relayed_by_peer(received, proof) == ("10.1.2.3", "api.example")
    assert relayed_by_peer({**received, "X-Shoal-Peer": "forged"}, proof) is None
    to_replica = request_headers(sent, peer="127.0.0.1", host="api.example", proto="http")
    assert not [n for n, _ in to_replica if n.lower().startswith("x-shoal")]


@pytest.mark.parametrize(
    "url",
    ["http://api.internal:8080", "https://10.0.0.1:8080", "http://10.0.0.1", "http://10.0.0.1:1/x"],
)
def test_a_peer_url_that_is_not_http_address_port_names_the_variable(url: str) -> None:
    environ = {"SHOAL_API_TOKEN": "a-token-123", "SHOAL_API_PEER_URL": url}
    with pytest.raises(SettingsError, match="SHOAL_API_PEER_URL="):
        Settings.from_env(environ)


def test_the_peer_url_defaults_to_loopback_and_takes_ipv6() -> None:
    environ = {"SHOAL_API_TOKEN": "a-token-123", "SHOAL_API_HTTP_PORT": "8180"}
    assert Settings.from_env(environ).peer_url == "http://127.0.0.1:8180"
    ipv6 = Settings.from_env(environ | {"SHOAL_API_PEER_URL": "http://[fd00::5]:8080/"})
    assert ipv6.peer_url == "http://[fd00::5]:8080"
