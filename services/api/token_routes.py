"""`/v1/tokens`: an admin makes scoped tokens (shown once), lists and revokes them. Each
change is an event on the tokens topic; every api instance folds it within its poll."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from events.payloads.tokens import FUNCTIONS_RULE, TokenRequest
from events.types import Payload, TokenCreated, TokenRevoked
from services.api.auth import author, digest_of, mint
from services.api.control import problem
from services.api.view import ApiView


@dataclass
class TokenRoutes:
    view: ApiView
    read_json: Callable[[web.Request], Awaitable[Any]]
    record: Callable[[Payload], Awaitable[None]]

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/tokens", self.list_tokens),
            web.post("/tokens", self.create_token),
            web.delete("/tokens/{token_id}", self.revoke_token),
        ]

    async def list_tokens(self, _: web.Request) -> web.Response:
        tokens = sorted(self.view.world.tokens.tokens.values(), key=lambda t: t.created_at)
        return web.json_response(
            {
                "tokens": [
                    {
                        "id": t.token_id,
                        "scope": t.scope,
                        "functions": list(t.functions),
                        "name": t.name,
                        "created_at": t.created_at.isoformat(),
                        "created_by": t.created_by,
                        "revoked": t.revoked,
                    }
                    for t in tokens
                ]
            }
        )

    async def create_token(self, request: web.Request) -> web.Response:
        try:
            asked = msgspec.convert(await self.read_json(request), TokenRequest)
        except msgspec.ValidationError as exc:
            return problem(422, "invalid input", fields=[{"field": "body", "message": str(exc)}])
        if not asked.names_functions_rightly():
            fields = [{"field": "functions", "message": FUNCTIONS_RULE}]
            return problem(422, "invalid input", fields=fields)
        token_id, token = mint()
        await self.record(
            TokenCreated(
                token_id=token_id,
                scope=asked.scope,
                functions=sorted(set(asked.functions)),
                name=asked.name,
                digest=digest_of(token),
                created_by=author(request.get("principal")),
            )
        )
        body = {"id": token_id, "token": token, "scope": asked.scope}
        return web.json_response(body | {"functions": sorted(set(asked.functions))}, status=201)

    async def revoke_token(self, request: web.Request) -> web.Response:
        token_id = request.match_info["token_id"]
        found = self.view.world.tokens.tokens.get(token_id)
        if found is None:
            return problem(404, f"no token with id {token_id!r}")
        if not found.revoked:
            await self.record(
                TokenRevoked(token_id=token_id, revoked_by=author(request.get("principal")))
            )
        return web.json_response({"id": token_id, "revoked": True})
