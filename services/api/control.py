"""The control plane, `/v1`: functions, scaling, rollback and nodes, as JSON over HTTP.

The api decides nothing beyond validation: each change is an event on Kafka, applied to
the api's own view at once so that a client reads its own writes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web
from aiokafka.errors import KafkaError
from multidict import MultiMapping

from events.errors import ShoalEventError
from events.projections.functions import FunctionView
from events.spec import MAX_REPLICAS_LIMIT
from events.types import (
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    NodeCordoned,
    NodeDrainRequested,
    NodeUncordoned,
    Payload,
    ScaleRequested,
    SealedSecret,
)
from services.api.auth import Principal, bearer, is_shoal_token, principal_of, verb_of
from services.api.openapi import openapi_document
from services.api.status import function_status
from services.api.validation import (
    BODY,
    Conflict,
    FieldError,
    InvalidInput,
    patched_scaling,
    spec_from_body,
    whole_number,
)
from services.api.view import ApiView
from services.common.journal import Journal, Unacknowledged

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLISH_TIMEOUT_S = 10.0


def problem(status: int, message: str, **details: Any) -> web.Response:
    return web.json_response({"error": message, **details}, status=status)


def invalid(exc: InvalidInput) -> web.Response:
    what = "conflicts with what exists now" if exc.status == 409 else "invalid input"
    return problem(
        exc.status, what, fields=[{"field": e.field, "message": e.message} for e in exc.errors]
    )


@dataclass
class ControlPlane:
    view: ApiView
    journal: Journal
    token: str
    max_body_bytes: int
    max_functions: int
    more: list[web.RouteDef] = field(default_factory=list)
    """Routes kept elsewhere (the tokens', the secrets'), under the same middlewares."""
    seal_for: Callable[[FunctionSpec], list[SealedSecret]] = lambda _: []
    """A revision's secrets, sealed for it (`SecretRoutes.seal_for`)."""

    def application(self) -> web.Application:
        """The control plane as an application to mount at /v1: its middlewares (auth,
        JSON errors) stay off the request path."""
        app = web.Application(middlewares=[self.json_errors, self.authenticate])
        app.add_routes(self.routes())
        return app

    def routes(self) -> list[web.RouteDef]:
        """The control plane's routes, relative to /v1."""
        return [
            web.get("/openapi.json", self.openapi),
            web.get("/functions", self.list_functions),
            web.post("/functions", self.create_function),
            web.get("/functions/{name}", self.get_function),
            web.put("/functions/{name}", self.replace_function),
            web.patch("/functions/{name}", self.patch_function),
            web.delete("/functions/{name}", self.delete_function),
            web.post("/functions/{name}/scale", self.scale_function),
            web.post("/functions/{name}/rollback", self.rollback_function),
            web.get("/nodes", self.list_nodes),
            web.post("/nodes/{node}/{action:cordon|uncordon|drain}", self.node_action),
            *self.more,
        ]

    def principal(self, request: web.Request) -> Principal | None:
        """Who the request's bearer token is (None: no token, or not a live one)."""
        return self.principal_in(request.headers)

    def principal_in(self, headers: MultiMapping[str]) -> Principal | None:
        """Who the bearer token in `headers` is (None: no token, or not a live one)."""
        token = bearer(headers.get("Authorization", ""))
        return None if token is None else self.principal_for(token)

    def principal_for(self, token: str) -> Principal | None:
        """Who a token is (None: not a live one)."""
        return principal_of(token, self.token, self.view.world.tokens)

    def carries_token(self, headers: MultiMapping[str]) -> bool:
        """Whether any `Authorization` of the request holds a Shoal token, however written
        (right or wrong): then none is passed to a function."""
        return any(
            is_shoal_token(value, self.token) for value in headers.getall("Authorization", [])
        )

    def may_read_metrics(self, request: web.Request) -> bool:
        found = self.principal(request)
        return found is not None and found.may("read")

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v1/openapi.json":
            return await handler(request)
        found = self.principal(request)
        if found is None:
            return problem(
                401,
                "missing, wrong or revoked token: send 'Authorization: Bearer <token>' "
                "(SHOAL_API_TOKEN, or one from `shoal token create`)",
            )
        needs = verb_of(request.method, request.path)
        if not found.may(needs):
            return problem(
                403,
                f"a {found.scope} token may not do this: it needs {needs}",
                scope=found.scope,
                needs=needs,
            )
        request["principal"] = found
        return await handler(request)

    @web.middleware
    async def json_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's own errors (unknown path, wrong method) as JSON, like ours."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.content_type == "application/json" or exc.status < 400:
                raise
            response = problem(exc.status, exc.reason, path=request.path)
            if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods that are allowed
                response.headers["Allow"] = exc.headers["Allow"]
            return response

    async def read_json(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.max_body_bytes,
                actual_size=request.content_length,
                text=json.dumps({"error": f"body over {self.max_body_bytes} bytes"}),
                content_type="application/json",
            )
        raw = await request.content.read(self.max_body_bytes + 1)
        if len(raw) > self.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.max_body_bytes,
                actual_size=len(raw),
                text=json.dumps({"error": f"body over {self.max_body_bytes} bytes"}),
                content_type="application/json",
            )
        try:
            return BODY.decode(raw)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"the body is not JSON: {exc}"}),
                content_type="application/json",
            ) from exc

    async def record(self, payload: Payload) -> None:
        """Publish a change; the journal applies it to this api's view (read your writes).
        With the event bus away, the caller hears so within PUBLISH_TIMEOUT_S: 503 when the
        change was refused, 504 when its fate is unknown (it may still be written)."""
        try:
            await self.journal.publish_within(payload, PUBLISH_TIMEOUT_S)
        except Unacknowledged as exc:
            raise web.HTTPGatewayTimeout(
                text=json.dumps(
                    {
                        "error": f"the event bus did not acknowledge the change ({exc}); it "
                        "may still be applied: look before trying again"
                    }
                ),
                content_type="application/json",
                headers={"Retry-After": "5"},
            ) from None
        except (ShoalEventError, KafkaError) as exc:
            raise web.HTTPServiceUnavailable(
                text=json.dumps(
                    {"error": f"the event bus did not take the change ({exc!r}); try again"}
                ),
                content_type="application/json",
                headers={"Retry-After": "5"},
            ) from None

    def function_or_404(self, name: str) -> FunctionView:
        function = self.view.function(name)
        if function is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no function named {name!r}"}),
                content_type="application/json",
            )
        return function

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def list_functions(self, _: web.Request) -> web.Response:
        functions = [f for f in self.view.world.functions.functions.values() if not f.deleted]
        return web.json_response(
            {
                "functions": [
                    function_status(self.view, f) for f in sorted(functions, key=lambda f: f.name)
                ]
            }
        )

    async def get_function(self, request: web.Request) -> web.Response:
        function = self.function_or_404(request.match_info["name"])
        return web.json_response(function_status(self.view, function))

    async def create_function(self, request: web.Request) -> web.Response:
        try:
            spec = spec_from_body(await self.read_json(request))
        except InvalidInput as exc:
            return invalid(exc)
        if self.view.function(spec.name) is not None:
            return problem(
                409, f"function {spec.name!r} exists; replace it with PUT /v1/functions/{spec.name}"
            )
        count = sum(1 for f in self.view.world.functions.functions.values() if not f.deleted)
        if count >= self.max_functions:
            return problem(
                409, f"the platform holds at most {self.max_functions} functions; delete one first"
            )
        revision = self.view.world.functions.next_revision(spec.name)
        try:
            sealed = self.seal_for(spec)
        except InvalidInput as exc:
            return invalid(exc)
        await self.record(
            FunctionDeployed(
                function=spec.name, revision=revision, spec=spec, secrets=sealed, requested_by="api"
            )
        )
        return web.json_response(
            function_status(self.view, self.function_or_404(spec.name)), status=201
        )

    async def replace_function(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        function = self.function_or_404(name)
        try:
            spec = spec_from_body(await self.read_json(request), name=name)
            sealed = self.seal_for(spec)
        except InvalidInput as exc:
            return invalid(exc)
        revision = max(function.revisions) + 1
        await self.record(
            FunctionUpdated(
                function=name, revision=revision, spec=spec, secrets=sealed, requested_by="api"
            )
        )
        return web.json_response(function_status(self.view, self.function_or_404(name)))

    async def patch_function(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        function = self.function_or_404(name)
        try:
            spec = patched_scaling(function.spec, await self.read_json(request))
        except InvalidInput as exc:
            return invalid(exc)
        await self.record(
            FunctionUpdated(
                function=name,
                revision=function.revision,
                spec=spec,
                secrets=list(function.sealed.get(function.revision, ())),
                requested_by="api",
            )
        )
        return web.json_response(function_status(self.view, self.function_or_404(name)))

    async def delete_function(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.function_or_404(name)
        await self.record(FunctionDeleted(function=name, requested_by="api"))
        return web.json_response({"deleted": name}, status=202)

    async def scale_function(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        function = self.function_or_404(name)
        try:
            replicas = whole_number(
                await self.read_json(request), "replicas", maximum=MAX_REPLICAS_LIMIT
            )
        except InvalidInput as exc:
            return invalid(exc)
        high = function.spec.max_replicas
        if high and replicas > high:
            return invalid(
                Conflict([FieldError("replicas", f"{replicas} is above max_replicas {high}")])
            )
        await self.record(ScaleRequested(function=name, replicas=replicas, requested_by="api"))
        return web.json_response({"function": name, "replicas": replicas}, status=202)

    async def rollback_function(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        function = self.function_or_404(name)
        try:
            revision = whole_number(await self.read_json(request), "revision", minimum=1)
        except InvalidInput as exc:
            return invalid(exc)
        if revision not in function.revisions:
            return problem(
                404,
                f"function {name!r} has no revision {revision}",
                revisions=sorted(function.revisions),
            )
        if revision == function.revision:
            return problem(409, f"revision {revision} is already current")
        await self.record(
            FunctionRolledBack(
                function=name,
                from_revision=function.revision,
                to_revision=revision,
                reason="rollback requested through the api",
            )
        )
        return web.json_response(function_status(self.view, self.function_or_404(name)))

    async def list_nodes(self, _: web.Request) -> web.Response:
        nodes = sorted(self.view.world.nodes.nodes.values(), key=lambda n: n.node)
        return web.json_response(
            {
                "nodes": [
                    {
                        "node": n.node,
                        "address": n.address,
                        "runtime": n.runtime,
                        "capacity": msgspec.to_builtins(n.capacity) if n.capacity else None,
                        "used_cpus": n.used_cpus,
                        "used_memory_mb": n.used_memory_mb,
                        "cpu_cores_used": n.cpu_cores_used,
                        "memory_mb_used": n.memory_mb_used,
                        "replicas": n.replicas,
                        "condition": n.condition,
                        "lost": n.lost,
                        "cordoned": n.cordoned,
                        "draining": n.draining,
                        "last_heartbeat_at": n.last_heartbeat_at.isoformat()
                        if n.last_heartbeat_at
                        else None,
                    }
                    for n in nodes
                ]
            }
        )

    async def node_action(self, request: web.Request) -> web.Response:
        node, action = request.match_info["node"], request.match_info["action"]
        if node not in self.view.world.nodes.nodes:
            return problem(404, f"no node named {node!r}")
        event: Payload = {
            "cordon": NodeCordoned(node=node, requested_by="api"),
            "uncordon": NodeUncordoned(node=node, requested_by="api"),
            "drain": NodeDrainRequested(node=node, requested_by="api"),
        }[action]
        await self.record(event)
        return web.json_response({"node": node, "action": action}, status=202)
