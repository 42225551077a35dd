"""The OpenAPI 3 document of the api, served at /v1/openapi.json."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from events.types import FunctionSpec

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok: int, *errors: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    described = {
        "200": "OK",
        "201": "Created",
        "202": "Accepted",
        "400": "Not JSON",
        "401": "No or wrong token",
        "404": "Not found",
        "409": "Conflict",
        "413": "Body too large",
        "422": "Invalid fields",
    }
    responses = {str(ok): {"description": described[str(ok)], **_json(body or {"type": "object"})}}
    for code in (401, *errors):
        responses[str(code)] = {"description": described[str(code)], **_json(ERROR)}
    return responses


def _name(param: str = "name") -> dict[str, Any]:
    return {
        "name": param,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"},
    }


@cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [FunctionSpec], ref_template="#/components/schemas/{name}"
    )
    spec_ref = {"$ref": "#/components/schemas/FunctionSpec"}
    status = {
        "type": "object",
        "required": ["name", "revision", "spec"],
        "properties": {
            "name": {"type": "string"},
            "revision": {"type": "integer"},
            "spec": spec_ref,
        },
    }
    components.update(
        {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "FunctionStatus": status,
        }
    )
    status_ref = {"$ref": "#/components/schemas/FunctionStatus"}
    scaling = {
        k: v
        for k, v in components["FunctionSpec"]["properties"].items()
        if k
        in {
            "min_replicas",
            "max_replicas",
            "initial_scale",
            "scaling_metric",
            "target",
            "target_utilization",
            "scale_to_zero_grace_s",
            "concurrency_limit",
        }
    }
    named = {"parameters": [_name()]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Shoal api", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": {
            "/v1/functions": {
                "get": {"summary": "List functions", "responses": _responses(200)},
                "post": {
                    "summary": "Deploy a function",
                    "requestBody": {"required": True, **_json(spec_ref)},
                    "responses": _responses(201, 400, 409, 413, 422, body=status_ref),
                },
            },
            "/v1/functions/{name}": {
                **named,
                "get": {
                    "summary": "A function's status",
                    "responses": _responses(200, 404, body=status_ref),
                },
                "put": {
                    "summary": "Replace a function (a new revision)",
                    "requestBody": {"required": True, **_json(spec_ref)},
                    "responses": _responses(200, 400, 404, 413, 422, body=status_ref),
                },
                "patch": {
                    "summary": "Change scaling settings",
                    "requestBody": {
                        "required": True,
                        **_json(
                            {"type": "object", "properties": scaling, "additionalProperties": False}
                        ),
                    },
                    "responses": _responses(200, 400, 404, 413, 422, body=status_ref),
                },
                "delete": {"summary": "Delete a function", "responses": _responses(202, 404)},
            },
            "/v1/functions/{name}/scale": {
                **named,
                "post": {
                    "summary": "Set the replica count by hand",
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {"replicas": {"type": "integer", "minimum": 0}},
                            }
                        ),
                    },
                    "responses": _responses(202, 400, 404, 413, 422),
                },
            },
            "/v1/functions/{name}/rollback": {
                **named,
                "post": {
                    "summary": "Make an earlier revision current",
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["revision"],
                                "properties": {"revision": {"type": "integer", "minimum": 1}},
                            }
                        ),
                    },
                    "responses": _responses(200, 400, 404, 409, 413, 422, body=status_ref),
                },
            },
            "/v1/nodes": {"get": {"summary": "List nodes", "responses": _responses(200)}},
            "/v1/nodes/{node}/{action}": {
                "parameters": [
                    _name("node"),
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["cordon", "uncordon", "drain"]},
                    },
                ],
                "post": {
                    "summary": "Cordon, uncordon or drain a node",
                    "responses": _responses(202, 404),
                },
            },
        },
    }
