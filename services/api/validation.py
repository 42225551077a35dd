"""Checks of user input against the one declared spec, naming every wrong field at once
(pure). The rules are the declaration's (`events.spec`); nothing is restated here."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import msgspec

from events.spec import SCALING_FIELDS, SPEC_DEFAULTS, SPEC_FIELDS, FunctionSpec, spec_problems

_TYPES = typing.get_type_hints(FunctionSpec, include_extras=True)
_FIELDS = {f.name: f for f in msgspec.inspect.type_info(FunctionSpec).fields}  # type: ignore[attr-defined]
_WHOLE = frozenset(
    name for name, f in _FIELDS.items() if isinstance(f.type.type, msgspec.inspect.IntType)
)


def _whole(value: Any) -> Any:
    """JSON has one number type: 3.0 is the whole number 3, as JSON Schema says."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    return {k: _whole(v) if k in _WHOLE else v for k, v in body.items()}


REQUIRED = tuple(f.name for f in _FIELDS.values() if f.required)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidInput(ValueError):
    """The input has wrong fields; `errors` names each of them."""

    status = 422

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class Conflict(InvalidInput):
    """The input is valid alone but conflicts with what exists now (a scaling change
    against the function's other settings, a count above its max_replicas, a secret that
    is not there)."""

    status = 409


def description(name: str) -> str:
    found = _FIELDS[name].type
    extra = getattr(found, "extra_json_schema", None) or {}
    return str(extra.get("description", name))


_single_field_structs: dict[str, type[msgspec.Struct]] = {}


def _single_field_struct(name: str) -> type[msgspec.Struct]:
    """A struct of one FunctionSpec field (with its constraints), to check it alone."""
    struct = _single_field_structs.get(name)
    if struct is None:
        struct = msgspec.defstruct(f"Check_{name}", [(name, _TYPES[name])])
        _single_field_structs[name] = struct
    return struct


def _message(name: str, exc: msgspec.ValidationError) -> str:
    text = str(exc).split(" - at ")[0]
    if "matching regex" in text:
        return f"is not valid: {description(name)}"
    return text


def _valid(name: str, value: Any) -> msgspec.ValidationError | None:
    try:
        msgspec.convert({name: value}, type=_single_field_struct(name))
    except msgspec.ValidationError as exc:
        return exc
    return None


def _check(name: str, value: Any) -> list[FieldError]:
    """The errors of one field's value; a map's wrong keys are named one by one."""
    exc = _valid(name, value)
    if exc is None:
        return []
    if isinstance(value, dict) and "`key`" in str(exc):
        bad = [key for key in value if _valid(name, {key: value[key]}) is not None]
        return [FieldError(f"{name}.{key}", "is not a valid name") for key in bad]
    return [FieldError(name, _message(name, exc))]


def _field_errors(
    body: dict[str, Any], allowed: frozenset[str] | tuple[str, ...]
) -> list[FieldError]:
    errors = [FieldError(k, "unknown field") for k in body if k not in allowed]
    for name in sorted(set(allowed) & set(body)):
        errors += _check(name, body[name])
    return errors


def _with_rule_errors(errors: list[FieldError], values: dict[str, Any]) -> list[FieldError]:
    """Add the errors of the rules that span fields, for fields whose values were valid."""
    failed = {e.field.split(".")[0] for e in errors}
    merged = {**SPEC_DEFAULTS, **values}
    try:
        problems = spec_problems(merged.__getitem__)
    except TypeError:  # a value of the wrong type, already named
        return errors
    return errors + [FieldError(f, m) for f, m in problems if f not in failed]


def spec_from_body(body: Any, *, name: str | None = None) -> FunctionSpec:
    """A full function spec from a request body; InvalidInput names every wrong field."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("body", "must be a JSON object")])
    if name is not None:
        if body.get("name", name) != name:
            raise InvalidInput([FieldError("name", f"must match the name in the path ({name})")])
        body = {**body, "name": name}
    body = normalized(body)
    errors = [FieldError(k, "is required") for k in REQUIRED if k not in body]
    errors = _with_rule_errors(errors + _field_errors(body, SPEC_FIELDS), body)
    if errors:
        raise InvalidInput(errors)
    return msgspec.convert(body, type=FunctionSpec)


def patched_scaling(spec: FunctionSpec, body: Any) -> FunctionSpec:
    """The spec with new scaling settings; other fields need a new revision (PUT)."""
    if not isinstance(body, dict) or not body:
        raise InvalidInput([FieldError("body", "must be a JSON object of scaling settings")])
    body = normalized(body)
    errors = [
        FieldError(k, "is not a scaling setting; replace the function (PUT) to change it")
        for k in body
        if k not in SCALING_FIELDS
    ]
    errors += _field_errors({k: v for k, v in body.items() if k in SCALING_FIELDS}, SCALING_FIELDS)
    errors = _with_rule_errors(errors, body)
    if errors:
        raise InvalidInput(errors)
    merged = {**msgspec.to_builtins(spec), **body}
    conflicts = _with_rule_errors([], merged)
    if conflicts:
        raise Conflict(conflicts)
    return msgspec.convert(merged, type=FunctionSpec)


def whole_number(body: Any, field: str, *, minimum: int = 0, maximum: int = 2**31) -> int:
    """One bounded whole-number field of a small JSON body (scale, rollback)."""
    value = _whole(body.get(field)) if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(
            [FieldError(field, f"must be a whole number from {minimum} to {maximum}")]
        )
    extra = [k for k in body if k != field]
    if extra:
        raise InvalidInput([FieldError(k, "unknown field") for k in extra])
    return value


def _json_number(literal: str) -> int | float:
    value = float(literal)
    return int(value) if value.is_integer() else value


BODY = msgspec.json.Decoder(float_hook=_json_number)
"""Request bodies as JSON Schema reads them: a number with no fraction is an integer
(71.0 is the integer 71, so an integer field takes it)."""
