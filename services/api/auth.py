"""Who a request's bearer token is, and what it may do (pure, over the world's tokens).

The api token (SHOAL_API_TOKEN) is an admin. Every other token is minted by the api as
`shoal_<id>_<secret>`; the log keeps its id, scope and SHA-256 digest, never the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from events.projections.tokens import TokensProjection
from events.types import Scope

TOKEN_PREFIX = "shoal_"
"""What every token Shoal mints starts with, so that the request path knows one."""
ID_HEX = 12
Verb = Literal["read", "deploy", "admin"]
VERBS: dict[Scope, frozenset[Verb]] = {
    "admin": frozenset({"read", "deploy", "admin"}),
    "deploy": frozenset({"read", "deploy"}),
    "read": frozenset({"read"}),
    "invoke": frozenset(),
}


@dataclass(frozen=True)
class Principal:
    """Who called: a scope, the functions an invoke token names, its id ('' for the api
    token)."""

    scope: Scope
    functions: tuple[str, ...] = ()
    token_id: str = ""

    def may(self, verb: Verb) -> bool:
        return verb in VERBS[self.scope]

    def may_invoke(self, function: str) -> bool:
        """A private function answers an admin, or an invoke token that names it."""
        return self.scope == "admin" or (self.scope == "invoke" and function in self.functions)


def verb_of(method: str, path: str) -> Verb:
    """What a control-plane call needs: tokens and nodes are an admin's, other changes a
    deployer's, reading a reader's."""
    if path.startswith("/v1/tokens"):
        return "admin"
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    return "admin" if path.startswith("/v1/nodes") else "deploy"


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint() -> tuple[str, str]:
    """A new token and its id."""
    token_id = secrets.token_hex(ID_HEX // 2)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_shoal_token(value: str, api_token: str) -> bool:
    """Whether a credential (an `Authorization` value, in any scheme or none) holds a Shoal
    token, right or wrong: it is never passed to a function."""
    return TOKEN_PREFIX in value or api_token in value


def principal_of(token: str, api_token: str, tokens: TokensProjection) -> Principal | None:
    """Who the token is; None for a token that is unknown, wrong or revoked (or not ASCII,
    as no token is)."""
    if not token.isascii():
        return None
    if hmac.compare_digest(token.encode(), api_token.encode()):
        return Principal("admin")
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id = token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + ID_HEX]
    found = tokens.live(token_id)
    if found is None or not hmac.compare_digest(found.digest, digest_of(token)):
        return None
    return Principal(found.scope, found.functions, found.token_id)


def author(principal: Principal | None) -> str:
    """The audit's name for who made a change: the token's id, or "api" for the api token."""
    return f"token {principal.token_id}" if principal and principal.token_id else "api"
