"""Which sealed secrets a revision runs with (pure, over the world's secrets)."""

from __future__ import annotations

from events.projections.secrets import SecretsProjection
from events.types import FunctionSpec, SealedSecret
from services.api.validation import Conflict, FieldError


def sealed_for(secrets: SecretsProjection, spec: FunctionSpec) -> list[SealedSecret]:
    """The newest sealed version of each secret the spec names; Conflict (409) naming those
    that do not exist."""
    missing = [name for name in spec.secrets if name not in secrets.secrets]
    if missing:
        raise Conflict(
            [
                FieldError("secrets", f"no secret named {name!r} (shoal secret set)")
                for name in missing
            ]
        )
    return [secrets.secrets[name].sealed for name in spec.secrets]
