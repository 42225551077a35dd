"""Checks of user input that name every wrong field at once (pure)."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any

import msgspec

from events.types import FunctionSpec

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SCALING_FIELDS = frozenset(
    {
        "min_replicas",
        "max_replicas",
        "initial_scale",
        "scaling_metric",
        "target",
        "target_utilization",
        "cpu_target_pct",
        "scale_to_zero_grace_s",
        "stable_window_s",
        "panic_window_pct",
        "panic_threshold_pct",
        "scale_down_delay_s",
        "max_scale_up_rate",
        "max_scale_down_rate",
        "concurrency_limit",
    }
)
SPEC_FIELDS = frozenset(FunctionSpec.__struct_fields__)
_SPEC_TYPES = typing.get_type_hints(FunctionSpec, include_extras=True)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidInput(ValueError):
    """The input has wrong fields; `errors` names each of them."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _field_errors(body: dict[str, Any], allowed: frozenset[str]) -> list[FieldError]:
    errors = [FieldError(k, "unknown field") for k in body if k not in allowed]
    for name in sorted(allowed & set(body)):
        try:
            msgspec.convert({name: body[name]}, type=_single_field_struct(name))
        except msgspec.ValidationError as exc:
            errors.append(FieldError(name, str(exc).split(" - at ")[0]))
    return errors


_single_field_structs: dict[str, type[msgspec.Struct]] = {}


def _single_field_struct(name: str) -> type[msgspec.Struct]:
    """A struct of one FunctionSpec field (with its constraints), to check it alone."""
    struct = _single_field_structs.get(name)
    if struct is None:
        struct = msgspec.defstruct(f"Check_{name}", [(name, _SPEC_TYPES[name])])
        _single_field_structs[name] = struct
    return struct


def _with_semantic_errors(errors: list[FieldError], spec: dict[str, Any]) -> list[FieldError]:
    """Add the errors of meaning, for fields whose type was right."""
    failed = {e.field for e in errors}
    return errors + [e for e in _semantic_errors(spec) if e.field not in failed]


def _semantic_errors(spec: dict[str, Any]) -> list[FieldError]:
    errors = []
    name = spec.get("name")
    if isinstance(name, str) and not DNS_LABEL.match(name):
        errors.append(
            FieldError(
                "name",
                "must be a DNS label: lowercase letters, digits and "
                "'-', starting with a letter, at most 63 characters",
            )
        )
    env = spec.get("env")
    if isinstance(env, dict):
        errors += [
            FieldError(f"env.{key}", "is not a valid environment variable name")
            for key in env
            if isinstance(key, str) and not ENV_NAME.match(key)
        ]
    path = spec.get("readiness_path")
    if isinstance(path, str) and path and not path.startswith("/"):
        errors.append(
            FieldError("readiness_path", "must start with '/' (or be empty for a TCP probe)")
        )
    low, high = spec.get("min_replicas", 0), spec.get("max_replicas", 0)
    if isinstance(low, int) and isinstance(high, int) and high and low > high:
        errors.append(FieldError("min_replicas", f"{low} is above max_replicas {high}"))
    initial = spec.get("initial_scale", 1)
    if isinstance(initial, int) and isinstance(high, int) and high and initial > high:
        errors.append(FieldError("initial_scale", f"{initial} is above max_replicas {high}"))
    return errors


def spec_from_body(body: Any, *, name: str | None = None) -> FunctionSpec:
    """A full function spec from a request body; InvalidInput names every wrong field."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("body", "must be a JSON object")])
    if name is not None:
        if body.get("name", name) != name:
            raise InvalidInput([FieldError("name", f"must match the name in the path ({name})")])
        body = {**body, "name": name}
    errors = [FieldError(k, "is required") for k in ("name", "image") if k not in body]
    errors = _with_semantic_errors(errors + _field_errors(body, SPEC_FIELDS), body)
    if errors:
        raise InvalidInput(errors)
    return msgspec.convert(body, type=FunctionSpec)


def patched_scaling(spec: FunctionSpec, body: Any) -> FunctionSpec:
    """The spec with new scaling settings; other fields need a new revision (PUT)."""
    if not isinstance(body, dict) or not body:
        raise InvalidInput([FieldError("body", "must be a JSON object of scaling settings")])
    errors = [
        FieldError(k, "is not a scaling setting; replace the function (PUT) to change it")
        for k in body
        if k not in SCALING_FIELDS
    ]
    errors += _field_errors({k: v for k, v in body.items() if k in SCALING_FIELDS}, SCALING_FIELDS)
    merged = {**msgspec.to_builtins(spec), **body}
    errors = _with_semantic_errors(errors, merged)
    if errors:
        raise InvalidInput(errors)
    return msgspec.convert(merged, type=FunctionSpec)


def whole_number(body: Any, field: str, *, minimum: int = 0) -> int:
    """One non-negative integer field of a small JSON body (scale, rollback)."""
    value = body.get(field) if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput([FieldError(field, f"must be a whole number >= {minimum}")])
    extra = [k for k in body if k != field]
    if extra:
        raise InvalidInput([FieldError(k, "unknown field") for k in extra])
    return value
