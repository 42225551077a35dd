"""Cut an event's free text to the lengths its declaration allows, and hold its measures
within their bounds, before it is sent: what a process writes must be readable by every
reader, and readers refuse what is too long, too large or not a number."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import msgspec

from events.types import Payload

P = TypeVar("P", bound=Payload)
_inspect: Any = msgspec.inspect


@cache
def _limits(kind: type[Payload]) -> tuple[tuple[str, int | None, int | None], ...]:
    """(field, most characters, most items) of the payload's text and list fields."""
    found = []
    for field in _inspect.type_info(kind).fields:
        meta = field.type
        base = meta.type if isinstance(meta, _inspect.Metadata) else meta
        if isinstance(base, _inspect.StrType) and base.max_length is not None:
            found.append((field.name, base.max_length, None))
        elif isinstance(base, _inspect.ListType) and isinstance(base.item_type, _inspect.StrType):
            found.append((field.name, base.item_type.max_length, base.max_length))
    return tuple(found)


@cache
def _measure_maps(kind: type[Payload]) -> tuple[tuple[str, float, float, int | None], ...]:
    """(field, least, most, most items) of the payload's maps of bounded numbers."""
    found = []
    for field in _inspect.type_info(kind).fields:
        base = field.type
        if isinstance(base, _inspect.DictType) and isinstance(base.value_type, _inspect.FloatType):
            value = base.value_type
            least = value.ge if value.ge is not None else float("-inf")
            most = value.le if value.le is not None else float("inf")
            found.append((field.name, least, most, base.max_length))
    return tuple(found)


def _held(value: float, least: float, most: float) -> float:
    """A number within [least, most]; NaN counts as 0."""
    return min(max(0.0 if value != value else value, least), most)


def printable(text: str) -> str:
    """Text with control characters escaped, so that it cannot steer a terminal."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _cut(text: str, most: int | None) -> str:
    if most is None or len(text) <= most:
        return text
    return text[: most - 3] + "..." if most > 3 else text[:most]


def within_bounds(payload: P) -> P:
    """The payload with every bounded text cut to fit, every bounded list and map
    shortened, and every number of a bounded map held within its bounds."""
    changes: dict[str, Any] = {}
    for name, least, most, items in _measure_maps(type(payload)):
        measures: dict[str, float] = getattr(payload, name)
        held = {k: _held(v, least, most) for k, v in list(measures.items())[:items]}
        if held != measures:
            changes[name] = held
    for name, chars, items in _limits(type(payload)):
        value = getattr(payload, name)
        if isinstance(value, str):
            if chars is not None and len(value) > chars:
                changes[name] = _cut(value, chars)
        elif isinstance(value, list):
            kept = value[-items:] if items is not None and len(value) > items else value
            cut = [_cut(v, chars) for v in kept]
            if cut != value:
                changes[name] = cut
    return msgspec.structs.replace(payload, **changes) if changes else payload
