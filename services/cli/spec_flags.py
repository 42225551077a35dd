"""`shoal deploy`'s flags, derived from the one declared spec: a flag per field, with the
field's type, choices, bounds and description (`events.spec`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import msgspec

from events.spec import FunctionSpec

F = TypeVar("F", bound=Callable[..., Any])
NOT_FLAGS = frozenset({"name"})
"""Fields given another way: the function's NAME is the command's argument."""
_inspect: Any = msgspec.inspect


def _bounded(kind: Any, number: type[click.IntRange | click.FloatRange]) -> Any:
    low = kind.ge if kind.ge is not None else kind.gt
    high = kind.le if kind.le is not None else kind.lt
    return number(low, high, min_open=kind.ge is None and kind.gt is not None)


def _option(field: Any) -> tuple[list[str], dict[str, Any]]:
    """click's declarations and settings for one spec field."""
    meta, kind = field.type, field.type.type
    extra = meta.extra or {}
    flag = extra.get("flag") or "--" + field.name.replace("_", "-")
    decls = [flag, *([extra["short"]] if "short" in extra else [])]
    settings: dict[str, Any] = {"help": meta.extra_json_schema.get("description")}
    if isinstance(kind, _inspect.UnionType):
        kind = next(t for t in kind.types if not isinstance(t, _inspect.NoneType))
    if isinstance(kind, _inspect.BoolType):
        return [f"{flag}/--no-{flag[2:]}"], {**settings, "default": None}
    if isinstance(kind, _inspect.IntType):
        settings["type"] = _bounded(kind, click.IntRange)
    elif isinstance(kind, _inspect.FloatType):
        settings["type"] = _bounded(kind, click.FloatRange)
    elif isinstance(kind, _inspect.LiteralType):
        settings["type"] = click.Choice(sorted(kind.values))
    elif isinstance(kind, _inspect.DictType | _inspect.ListType):
        settings["multiple"] = True
        settings["help"] += ", repeatable"
        item = getattr(kind, "item_type", None)
        if isinstance(item, _inspect.IntType):
            settings["type"] = _bounded(item, click.IntRange)
    return decls, settings


def spec_fields() -> list[Any]:
    return [f for f in _inspect.type_info(FunctionSpec).fields if f.name not in NOT_FLAGS]


def spec_flags(command: F) -> F:
    """Add a flag for every field of the spec to a click command."""
    for field in reversed(spec_fields()):
        decls, settings = _option(field)
        command = click.option(*decls, field.name, **settings)(command)
    return command


def given(flags: dict[str, Any]) -> dict[str, Any]:
    """The spec fields set by flags: maps from KEY=VALUE pairs, lists in order."""
    kinds = {f.name: f.type.type for f in spec_fields()}
    spec: dict[str, Any] = {}
    for name, value in flags.items():
        if name not in kinds or value is None or value == ():
            continue
        if isinstance(kinds[name], _inspect.DictType):
            spec[name] = dict(_pair(item, name) for item in value)
        elif isinstance(kinds[name], _inspect.ListType):
            spec[name] = list(value)
        else:
            spec[name] = value
    return spec


def _pair(item: str, name: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        flag = "--" + name.replace("_", "-")
        raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=flag)
    return key, value
