"""schemathesis hooks: what JSON Schema cannot say, said from the declaration.

A rule that spans fields (min_replicas <= max_replicas), or a body and its path (a
replacement names the function its path names), or a sum (a secret's values together, a
traffic split's percents), has no JSON Schema keyword, so a request the schema allows can
still break it; such requests are not generated as valid ones."""

from __future__ import annotations

from typing import Any

import msgspec
import schemathesis

from events.payloads.secrets import MAX_SECRET_BYTES, SecretRequest
from events.spec import SPEC_DEFAULTS, spec_problems
from events.types import TrafficSplit


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    body = case.body
    meta = getattr(case, "meta", None)
    if not isinstance(body, dict) or meta is None or not meta.generation.mode.is_positive:
        return True
    if isinstance(body.get("values"), dict):  # a secret: its values' size together
        return SecretRequest(values=body["values"]).size() <= MAX_SECRET_BYTES
    if "targets" in body:  # a split: its percents together, each revision once
        try:
            msgspec.convert({"function": "f", **body}, TrafficSplit)
        except msgspec.ValidationError:
            return False
        return True
    path_name = (case.path_parameters or {}).get("name")
    if path_name is not None and body.get("name", path_name) != path_name:
        return False
    merged = {**SPEC_DEFAULTS, **body}
    try:
        return not spec_problems(merged.__getitem__)
    except (TypeError, KeyError):
        return True
