"""The spec is declared once: the api's OpenAPI bodies and the CLI's flags name exactly the
declared fields, with the declared bounds."""

from __future__ import annotations

import click

from events.spec import DNS_LABEL, SCALING_FIELDS, SPEC_FIELDS
from services.api.openapi import openapi_document
from services.cli.functions import deploy

NOT_SPEC_FLAGS = {"name", "spec_file", "no_wait", "wait_s", "output"}


def schema(name: str) -> dict[str, object]:
    found: dict[str, object] = openapi_document()["components"]["schemas"][name]
    return found


def body_ref(path: str, method: str) -> str:
    operation = openapi_document()["paths"][path][method]
    ref: str = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_the_post_put_and_patch_bodies_name_exactly_the_declared_fields() -> None:
    post = schema(body_ref("/v1/functions", "post"))
    put = schema(body_ref("/v1/functions/{name}", "put"))
    patch = schema(body_ref("/v1/functions/{name}", "patch"))
    assert set(post["properties"]) == set(SPEC_FIELDS)  # type: ignore[arg-type]
    assert set(put["properties"]) == set(SPEC_FIELDS)  # type: ignore[arg-type]
    assert set(patch["properties"]) == SCALING_FIELDS  # type: ignore[arg-type]
    assert post["additionalProperties"] is False and patch["additionalProperties"] is False
    assert post["required"] == ["name", "image"] and put["required"] == ["image"]


def test_the_schema_carries_the_declared_bounds_and_patterns() -> None:
    properties: dict[str, dict[str, object]] = schema("FunctionSpec")["properties"]  # type: ignore[assignment]
    assert properties["name"]["pattern"] == DNS_LABEL
    assert properties["memory_mb"]["maximum"] == 65536
    assert properties["max_scale_up_rate"]["exclusiveMinimum"] == 1
    path = openapi_document()["paths"]["/v1/functions/{name}"]["parameters"][0]["schema"]
    assert path["pattern"] == properties["name"]["pattern"]


def test_the_cli_has_a_flag_for_exactly_the_declared_fields() -> None:
    flags = {p.name for p in deploy.params if isinstance(p, click.Option)}
    assert flags - NOT_SPEC_FLAGS == set(SPEC_FIELDS) - {"name"}
    arguments = {p.name for p in deploy.params if isinstance(p, click.Argument)}
    assert arguments == {"name"}


def test_the_cli_flags_carry_the_declared_bounds() -> None:
    by_name = {p.name: p for p in deploy.params}
    memory = by_name["memory_mb"].type
    assert isinstance(memory, click.IntRange) and (memory.min, memory.max) == (8, 65536)
    metric = by_name["scaling_metric"].type
    assert isinstance(metric, click.Choice) and set(metric.choices) == {"concurrency", "rps", "cpu"}
