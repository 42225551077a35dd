"""Api tokens: made and revoked by an admin through the api. An event holds a token's
SHA-256 digest, never the token."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

import msgspec

from events.payloads.base import Payload, Text
from events.spec import DNS_LABEL, END

Scope = Literal["admin", "deploy", "read", "invoke"]
"""admin: everything; deploy: functions and scaling (no tokens, no nodes); read: every GET,
the audit, replay and the dashboard; invoke: calling the named private functions."""
TokenId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{12}" + END)]
Digest = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}" + END)]
FunctionName = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=DNS_LABEL)]
Label = Annotated[str, msgspec.Meta(max_length=100)]
InvokeFunctions = Annotated[list[FunctionName], msgspec.Meta(max_length=100)]
"""The private functions an invoke token may call."""


SCOPES: tuple[Scope, ...] = get_args(Scope)
FUNCTIONS_RULE = "an invoke token names the functions it may call; no other token names any"


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What `POST /v1/tokens` takes: the scope, the functions of an invoke token, a label."""

    scope: Scope
    functions: InvokeFunctions = msgspec.field(default_factory=list)
    name: Label = ""

    def names_functions_rightly(self) -> bool:
        """FUNCTIONS_RULE, the one rule across its fields."""
        return (self.scope == "invoke") == bool(self.functions)


class TokenScoped(Payload, frozen=True, kw_only=True):
    token_id: TokenId

    @property
    def key(self) -> str:
        return self.token_id


class TokenCreated(TokenScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.token.created"
    scope: Scope
    functions: InvokeFunctions = []
    name: Label = ""
    digest: Digest
    created_by: Text = ""


class TokenRevoked(TokenScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.token.revoked"
    revoked_by: Text = ""
