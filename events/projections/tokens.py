"""The api's tokens, folded from their events: what each may do, and whether it still may.
A token itself is never kept, only its digest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events.types import Scope, TokenCreated, TokenRevoked


@dataclass
class TokenView:
    token_id: str
    scope: Scope
    functions: tuple[str, ...]
    name: str
    digest: str
    created_at: datetime
    created_by: str
    revoked: bool = False


@dataclass
class TokensProjection:
    tokens: dict[str, TokenView] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    """Ids revoked, kept even when the revocation is read before the creation."""

    def apply(self, event: TokenCreated | TokenRevoked, at: datetime) -> None:
        if isinstance(event, TokenRevoked):
            self.revoked.add(event.token_id)
            found = self.tokens.get(event.token_id)
            if found is not None:
                found.revoked = True
            return
        if event.token_id in self.tokens:
            return
        self.tokens[event.token_id] = TokenView(
            token_id=event.token_id,
            scope=event.scope,
            functions=tuple(event.functions),
            name=event.name,
            digest=event.digest,
            created_at=at,
            created_by=event.created_by,
            revoked=event.token_id in self.revoked,
        )

    def live(self, token_id: str) -> TokenView | None:
        found = self.tokens.get(token_id)
        return found if found is not None and not found.revoked else None
