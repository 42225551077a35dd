"""The OpenAPI 3.1 document of the api, served at /v1/openapi.json, derived from the one
declared spec (`events.spec`): the request bodies of POST, PUT and PATCH are the spec's
own JSON Schema, with its bounds and patterns."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import msgspec

from events.payloads.secrets import SecretRequest
from events.payloads.tokens import TokenRequest
from events.spec import MAX_REPLICAS_LIMIT, SCALING_FIELDS, FunctionSpec
from events.types import TrafficSplit

ERROR = {"$ref": "#/components/schemas/Error"}
STATUS = {"$ref": "#/components/schemas/FunctionStatus"}
DESCRIBED = {
    "200": "OK",
    "201": "Created",
    "202": "Accepted",
    "400": "Not JSON",
    "401": "No, wrong or revoked token",
    "403": "The token's scope does not allow it",
    "404": "Not found",
    "409": "Conflict",
    "413": "Body too large",
    "422": "Invalid fields",
    "503": "Starting (reading the log back), or the event bus is away: retry after Retry-After",
}
NODE = {"type": "string", "minLength": 1, "maxLength": 253}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, **_json(schema)}}


def _responses(ok: int, *errors: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {str(ok): {"description": DESCRIBED[str(ok)], **_json(body or {"type": "object"})}}
    for code in (401, 403, *errors, 503):
        responses[str(code)] = {"description": DESCRIBED[str(code)], **_json(ERROR)}
    return responses


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, **extra, "responses": responses}


def _small_body(field: str, minimum: int, maximum: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [field],
        "properties": {field: {"type": "integer", "minimum": minimum, "maximum": maximum}},
        "additionalProperties": False,
    }


def _split_body() -> dict[str, Any]:
    """The body of a traffic split, from the event's own declaration."""
    _, components = msgspec.json.schema_components(
        [TrafficSplit], ref_template="#/components/schemas/{name}"
    )
    targets = components["TrafficSplit"]["properties"]["targets"]
    targets["items"] = components["TrafficTarget"]
    return {
        "type": "object",
        "required": ["targets"],
        "properties": {"targets": targets},
        "additionalProperties": False,
        "description": "percents summing to 100, each revision once",
    }


def spec_schemas() -> dict[str, Any]:
    """The schemas of the spec: to create (all of it), to replace (the name may be left
    out: the path names it) and to patch (scaling settings only)."""
    _, components = msgspec.json.schema_components(
        [FunctionSpec], ref_template="#/components/schemas/{name}"
    )
    spec = components["FunctionSpec"]
    spec["additionalProperties"] = False
    replace = copy.deepcopy(spec)
    replace["required"] = [f for f in spec.get("required", []) if f != "name"]
    patch = {
        "type": "object",
        "properties": {k: v for k, v in spec["properties"].items() if k in SCALING_FIELDS},
        "additionalProperties": False,
        "minProperties": 1,
    }
    return {"FunctionSpec": spec, "FunctionSpecReplacement": replace, "ScalingPatch": patch}


def _components() -> dict[str, Any]:
    schemas = spec_schemas()
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    }
    schemas["FunctionStatus"] = {
        "type": "object",
        "required": ["name", "revision", "spec"],
        "properties": {
            "name": {"type": "string"},
            "revision": {"type": "integer"},
            "spec": {"$ref": "#/components/schemas/FunctionSpec"},
        },
    }
    return {
        "schemas": schemas,
        "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
    }


def _function_paths(name: dict[str, Any]) -> dict[str, Any]:
    ref = "#/components/schemas/"
    named = {"parameters": [{"name": "name", "in": "path", "required": True, "schema": name}]}
    return {
        "/v1/functions": {
            "get": _operation("List functions", _responses(200)),
            "post": _operation(
                "Deploy a function",
                _responses(201, 400, 409, 413, 422, body=STATUS),
                **_body({"$ref": ref + "FunctionSpec"}),
            ),
        },
        "/v1/functions/{name}": {
            **named,
            "get": _operation("A function's status", _responses(200, 404, body=STATUS)),
            "put": _operation(
                "Replace a function (a new revision)",
                _responses(200, 400, 404, 409, 413, 422, body=STATUS),
                **_body({"$ref": ref + "FunctionSpecReplacement"}),
            ),
            "patch": _operation(
                "Change scaling settings",
                _responses(200, 400, 404, 409, 413, 422, body=STATUS),
                **_body({"$ref": ref + "ScalingPatch"}),
            ),
            "delete": _operation("Delete a function", _responses(202, 404)),
        },
        "/v1/functions/{name}/scale": {
            **named,
            "post": _operation(
                "Set the replica count by hand",
                _responses(202, 400, 404, 409, 413, 422),
                **_body(_small_body("replicas", 0, MAX_REPLICAS_LIMIT)),
            ),
        },
        **_traffic_paths(named, name),
        "/v1/functions/{name}/rollback": {
            **named,
            "post": _operation(
                "Make an earlier revision current",
                _responses(200, 400, 404, 409, 413, 422, body=STATUS),
                **_body(_small_body("revision", 1, 2**31)),
            ),
        },
    }


def _traffic_paths(named: dict[str, Any], name: dict[str, Any]) -> dict[str, Any]:
    return {
        "/v1/functions/{name}/traffic": {
            **named,
            "put": _operation(
                "Split the function's calls between revisions (ends a canary in progress)",
                _responses(200, 400, 404, 409, 413, 422, body=STATUS),
                **_body(_split_body()),
            ),
        },
        "/v1/functions/{name}/tags/{tag}": {
            "parameters": [
                *named["parameters"],
                {"name": "tag", "in": "path", "required": True, "schema": name},
            ],
            "put": _operation(
                "Name a revision with a tag (/fn/NAME@TAG/ reaches it)",
                _responses(200, 400, 404, 409, 413, 422, body=STATUS),
                **_body(_small_body("revision", 1, 2**31)),
            ),
            "delete": _operation("Remove a tag", _responses(200, 404, body=STATUS)),
        },
    }


def _node_paths() -> dict[str, Any]:
    action = {"enum": ["cordon", "uncordon", "drain"]}
    return {
        "/v1/nodes": {"get": _operation("List nodes", _responses(200))},
        "/v1/nodes/{node}/{action}": {
            "parameters": [
                {"name": "node", "in": "path", "required": True, "schema": NODE},
                {"name": "action", "in": "path", "required": True, "schema": action},
            ],
            "post": _operation("Cordon, uncordon or drain a node", _responses(202, 404)),
        },
    }


def _token_paths() -> dict[str, Any]:
    (request,), found = msgspec.json.schema_components([TokenRequest])
    declared = found[request["$ref"].split("/")[-1]]
    props, functions = declared["properties"], declared["properties"]["functions"]
    others = [s for s in props["scope"]["enum"] if s != "invoke"]
    body = {  # the declaration, and its one rule: only an invoke token names functions
        "oneOf": [
            declared
            | {
                "properties": props
                | {"scope": {"const": "invoke"}, "functions": functions | {"minItems": 1}},
                "required": ["scope", "functions"],
            },
            declared
            | {
                "properties": props
                | {"scope": {"enum": others}, "functions": functions | {"maxItems": 0}}
            },
        ]
    }
    token_id = {"type": "string", "pattern": "^[0-9a-f]{12}$"}
    return {
        "/v1/tokens": {
            "get": _operation("List tokens (never their secrets)", _responses(200)),
            "post": _operation(
                "Make a token; its secret is in this answer only",
                _responses(201, 400, 413, 422),
                **_body(body),
            ),
        },
        "/v1/tokens/{token_id}": {
            "parameters": [
                {"name": "token_id", "in": "path", "required": True, "schema": token_id}
            ],
            "delete": _operation("Revoke a token", _responses(200, 404)),
        },
    }


SECRET_SET = {
    "type": "object",
    "required": ["name", "version", "keys", "rolled"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "keys": {"type": "array", "items": {"type": "string"}},
        "rolled": {"type": "array", "items": {"type": "object"}},
    },
}


def _secret_paths(name: dict[str, Any]) -> dict[str, Any]:
    (request,), found = msgspec.json.schema_components([SecretRequest])
    body = found[request["$ref"].split("/")[-1]]
    return {
        "/v1/secrets": {
            "get": _operation(
                "List secrets: names, versions and keys, never a value", _responses(200)
            ),
        },
        "/v1/secrets/{name}": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": name}],
            "put": _operation(
                "Set a secret (a new version); the functions that use it roll out",
                _responses(200, 400, 413, 422, body=SECRET_SET) | _responses(201, body=SECRET_SET),
                **_body(body),
            ),
            "delete": _operation(
                "Remove a secret no function uses", _responses(200, 404, 409, 422)
            ),
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    components = _components()
    name = components["schemas"]["FunctionSpec"]["properties"]["name"]
    path_name = {
        k: v for k, v in name.items() if k in ("type", "pattern", "minLength", "maxLength")
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Shoal api", "version": "1"},
        "components": components,
        "security": [{"token": []}],
        "paths": {
            **_function_paths(path_name),
            **_node_paths(),
            **_token_paths(),
            **_secret_paths(path_name),
        },
    }
