"""`/v1/secrets`: set (sealed at once: the value never reaches the log, a log line or a
reply), list (names, versions and keys) and remove secrets. Setting one rolls a new
revision of every function that names it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from events.payloads.secrets import (
    MAX_SECRET_BYTES,
    SEALED_CHARS,
    SecretName,
    SecretRequest,
)
from events.projections.functions import FunctionView
from events.spec import spec_identity
from events.types import (
    FunctionSpec,
    FunctionUpdated,
    Payload,
    SealedSecret,
    SecretRemoved,
    SecretSet,
)
from services.api.auth import author
from services.api.control import problem
from services.api.validation import Conflict, FieldError
from services.api.view import ApiView
from services.common.sealing import KEY_SOURCES, SealingKey, UnsealError

_name = msgspec.json.Decoder(SecretName)


@dataclass
class SecretRoutes:
    view: ApiView
    read_json: Callable[[web.Request], Awaitable[Any]]
    record: Callable[[Payload], Awaitable[None]]
    key: SealingKey | None
    setting: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    """One set of each secret at a time: two never take the same version."""

    def seal_for(self, spec: FunctionSpec) -> list[SealedSecret]:
        """The newest version of each secret the spec names, sealed for its revision alone
        (bound to `spec_identity`: a start command for another image, command or function
        cannot open it). Conflict (409) naming what is missing."""
        found = self.view.world.secrets.secrets
        problems = [
            FieldError("secrets", f"no secret named {name!r} (shoal secret set)")
            for name in spec.secrets
            if name not in found
        ]
        if spec.secrets and self.key is None:
            problems.append(FieldError("secrets", f"the api has no sealing key ({KEY_SOURCES})"))
        if problems:
            raise Conflict(problems)
        if not spec.secrets or self.key is None:
            return []
        holder = spec_identity(spec)
        try:
            return [self.key.reseal(found[name].sealed, holder) for name in spec.secrets]
        except UnsealError as exc:
            raise Conflict([FieldError("secrets", str(exc))]) from None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/secrets", self.list_secrets),
            web.put("/secrets/{name}", self.set_secret),
            web.delete("/secrets/{name}", self.remove_secret),
        ]

    def _users(self, name: str) -> list[FunctionView]:
        functions = self.view.world.functions.functions.values()
        return sorted(
            (f for f in functions if not f.deleted and name in f.spec.secrets),
            key=lambda f: f.name,
        )

    async def list_secrets(self, _: web.Request) -> web.Response:
        found = sorted(self.view.world.secrets.secrets.items())
        return web.json_response(
            {
                "secrets": [
                    {
                        "name": name,
                        "version": s.version,
                        "keys": list(s.sealed.keys),
                        "set_at": s.set_at.isoformat(),
                        "set_by": s.set_by,
                        "used_by": [f.name for f in self._users(name)],
                    }
                    for name, s in found
                ]
            }
        )

    async def set_secret(self, request: web.Request) -> web.Response:
        name = _checked_name(request)
        if self.key is None:
            return problem(503, f"secrets are off: the api has no sealing key ({KEY_SOURCES})")
        try:
            asked = msgspec.convert(await self.read_json(request), SecretRequest)
        except msgspec.ValidationError as exc:
            return problem(422, "invalid input", fields=[{"field": "values", "message": str(exc)}])
        async with self.setting[name]:
            return await self._set(request, name, asked, self.key)

    async def _set(
        self, request: web.Request, name: str, asked: SecretRequest, key: SealingKey
    ) -> web.Response:
        version = self.view.world.secrets.next_version(name)
        sealed = key.seal(name, version, asked.values)
        if asked.size() > MAX_SECRET_BYTES or len(sealed.ciphertext) > SEALED_CHARS:
            message = f"the values come to more than a secret holds ({MAX_SECRET_BYTES} bytes)"
            return problem(422, "invalid input", fields=[{"field": "values", "message": message}])
        by = author(request.get("principal"))
        await self.record(SecretSet(name=name, sealed=sealed, set_by=by))
        rolled = [await self._roll(function, by) for function in self._users(name)]
        body = {"name": name, "version": version, "keys": sorted(asked.values), "rolled": rolled}
        return web.json_response(body, status=201 if version == 1 else 200)

    async def _roll(self, function: FunctionView, by: str) -> dict[str, Any]:
        """A new revision of the function with its secrets' newest versions."""
        revision = max(function.revisions) + 1
        sealed = self.seal_for(function.spec)
        await self.record(
            FunctionUpdated(
                function=function.name,
                revision=revision,
                spec=function.spec,
                secrets=sealed,
                requested_by=by,
            )
        )
        return {"function": function.name, "revision": revision}

    async def remove_secret(self, request: web.Request) -> web.Response:
        name = _checked_name(request)
        if name not in self.view.world.secrets.secrets:
            return problem(404, f"no secret named {name!r}")
        users = [f.name for f in self._users(name)]
        if users:
            return problem(
                409,
                f"secret {name!r} is used by {', '.join(users)}: take it out of their specs first",
            )
        await self.record(SecretRemoved(name=name, removed_by=author(request.get("principal"))))
        return web.json_response({"name": name, "removed": True})


def _checked_name(request: web.Request) -> str:
    raw = request.match_info["name"]
    try:
        return _name.decode(msgspec.json.encode(raw))
    except msgspec.ValidationError:
        raise web.HTTPUnprocessableEntity(
            text=msgspec.json.encode(
                {
                    "error": "invalid input",
                    "fields": [{"field": "name", "message": "a secret's name is a DNS label"}],
                }
            ).decode(),
            content_type="application/json",
        ) from None
