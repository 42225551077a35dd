"""Tokens and scopes (pure): who a token is, and a table of every control-plane route
against every scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from events.projections.tokens import TokensProjection
from events.types import TokenCreated, TokenRevoked
from services.api.auth import Principal, digest_of, is_shoal_token, mint, principal_of, verb_of
from services.api.control import ControlPlane

T0 = datetime(2026, 11, 26, tzinfo=UTC)
API_TOKEN = "api-token-0123456789"


def made(scope: str, functions: tuple[str, ...] = ()) -> tuple[TokensProjection, str, str]:
    tokens = TokensProjection()
    token_id, token = mint()
    created = TokenCreated(
        token_id=token_id,
        scope=scope,
        functions=list(functions),
        digest=digest_of(token),  # type: ignore[arg-type]
    )
    tokens.apply(created, T0)
    return tokens, token_id, token


def test_a_token_is_who_its_digest_says_until_it_is_revoked() -> None:
    tokens, token_id, token = made("invoke", ("a",))
    assert principal_of(token, API_TOKEN, tokens) == Principal("invoke", ("a",), token_id)
    assert principal_of(token[:-1] + "x", API_TOKEN, tokens) is None
    assert principal_of(API_TOKEN, API_TOKEN, tokens) == Principal("admin")
    assert principal_of("shoal_000000000000_nope", API_TOKEN, tokens) is None
    assert principal_of("someone-elses", API_TOKEN, tokens) is None
    tokens.apply(TokenRevoked(token_id=token_id), T0)
    assert principal_of(token, API_TOKEN, tokens) is None
    assert token.startswith("shoal_") and digest_of(token) not in token


def test_a_revocation_read_before_its_creation_still_holds() -> None:
    tokens = TokensProjection()
    token_id, token = mint()
    tokens.apply(TokenRevoked(token_id=token_id), T0)
    tokens.apply(TokenCreated(token_id=token_id, scope="admin", digest=digest_of(token)), T0)
    assert principal_of(token, API_TOKEN, tokens) is None


def test_shoal_tokens_are_known_right_or_wrong_and_others_are_not() -> None:
    assert is_shoal_token(API_TOKEN, API_TOKEN)
    assert is_shoal_token("shoal_anything", API_TOKEN)
    assert not is_shoal_token("dXNlcjpwdw==", API_TOKEN)


def test_invoke_tokens_call_only_the_functions_they_name() -> None:
    caller = Principal("invoke", ("a",), "t1")
    assert caller.may_invoke("a") and not caller.may_invoke("b")
    assert Principal("admin").may_invoke("b")
    assert not Principal("deploy").may_invoke("a") and not Principal("read").may_invoke("a")


ALLOWED = {
    "admin": {"read", "deploy", "admin"},
    "deploy": {"read", "deploy"},
    "read": {"read"},
    "invoke": set(),
}
EXPECTED = {
    ("GET", "/v1/openapi.json"): "read",
    ("GET", "/v1/functions"): "read",
    ("POST", "/v1/functions"): "deploy",
    ("GET", "/v1/functions/{name}"): "read",
    ("PUT", "/v1/functions/{name}"): "deploy",
    ("PATCH", "/v1/functions/{name}"): "deploy",
    ("DELETE", "/v1/functions/{name}"): "deploy",
    ("POST", "/v1/functions/{name}/scale"): "deploy",
    ("POST", "/v1/functions/{name}/rollback"): "deploy",
    ("GET", "/v1/nodes"): "read",
    ("POST", "/v1/nodes/{node}/{action:cordon|uncordon|drain}"): "admin",
    ("GET", "/v1/tokens"): "admin",
    ("POST", "/v1/tokens"): "admin",
    ("DELETE", "/v1/tokens/{token_id}"): "admin",
    ("GET", "/v1/secrets"): "read",
    ("PUT", "/v1/secrets/{name}"): "deploy",
    ("DELETE", "/v1/secrets/{name}"): "deploy",
}


def routes() -> list[tuple[str, str]]:
    from services.api.secret_routes import SecretRoutes
    from services.api.token_routes import TokenRoutes

    control: Any = ControlPlane(None, None, API_TOKEN, 1, 1)  # type: ignore[arg-type]
    control.more = [
        *TokenRoutes(None, control.read_json, control.record).routes(),  # type: ignore[arg-type]
        *SecretRoutes(None, control.read_json, control.record, None).routes(),  # type: ignore[arg-type]
    ]
    return [(r.method, f"/v1{r.path}") for r in control.routes()]


def test_every_route_is_in_the_scope_table() -> None:
    assert set(routes()) == set(EXPECTED)


@pytest.mark.parametrize("scope", sorted(ALLOWED))
def test_each_scope_may_do_exactly_its_verbs_on_every_route(scope: str) -> None:
    principal = Principal(scope)  # type: ignore[arg-type]
    for method, path in routes():
        wanted = EXPECTED[(method, path)] in ALLOWED[scope]
        concrete = path.replace("{action:cordon|uncordon|drain}", "drain")
        assert principal.may(verb_of(method, concrete)) == wanted, (scope, method, path)
