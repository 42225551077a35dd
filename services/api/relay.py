"""A call relayed from one api instance to a peer that holds slots of the function's
replicas (pure): the caller's own headers go on, with proof that a peer sends them and the
caller's address. A relayed call is served where it lands, never relayed again."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from services.api.forwarding import HOP_BY_HOP, connection_named

PEER_HEADER = "X-Shoal-Peer"
"""Proof that an api instance relays the call (derived from the api token)."""
CLIENT_HEADER = "X-Shoal-Client"
"""The caller's address, as the relaying instance saw it."""
HOST_HEADER = "X-Shoal-Host"
"""The Host the caller asked for (the relay's own request names the peer)."""
RELAY_HEADERS = frozenset(h.lower() for h in (PEER_HEADER, CLIENT_HEADER, HOST_HEADER))
"""Said between api instances only: taken from no caller, passed to no replica."""


def peer_address(url: str) -> str:
    """`url` as http://ADDRESS:PORT when it is one, with an IP address (the relay's client
    takes no names, paths or credentials); ValueError otherwise."""
    parts = urlsplit(url)
    ipaddress.ip_address(parts.hostname or "")
    if parts.scheme != "http" or not parts.port or parts.path not in ("", "/"):
        raise ValueError(url)
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError(url)
    return f"http://{parts.netloc}"


def peer_proof(token: str) -> str:
    """What a peer shows: an HMAC of the api token (the token itself never travels)."""
    return hmac.new(token.encode(), b"shoal api peer relay", hashlib.sha256).hexdigest()


def relayed_by_peer(headers: Mapping[str, str], proof: str) -> tuple[str, str] | None:
    """The caller's address and Host when a peer relayed this call (None: no peer did)."""
    shown = headers.get(PEER_HEADER, "")
    if not shown or not shown.isascii() or not hmac.compare_digest(shown.encode(), proof.encode()):
        return None
    return headers.get(CLIENT_HEADER, "")[:64] or "unknown", headers.get(HOST_HEADER, "")[:256]


def relay_headers(
    headers: list[tuple[str, str]], *, proof: str, client: str, host: str
) -> list[tuple[str, str]]:
    """The headers a peer gets: the caller's end-to-end ones as they came (credentials
    included: the peer checks them again), framing dropped, and the relay's own."""
    dropped = HOP_BY_HOP | RELAY_HEADERS | connection_named(headers) | {"content-length", "host"}
    kept = [(name, value) for name, value in headers if name.lower() not in dropped]
    return [*kept, (PEER_HEADER, proof), (CLIENT_HEADER, client), (HOST_HEADER, host)]
