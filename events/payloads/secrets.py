"""Secrets: values a function reads from files, sealed (AES-256-GCM) with a key that is
never in Kafka. An event holds a secret's name, version, key names and ciphertext; the log
can be replayed and audited without revealing a value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, ClassVar

import msgspec

from events.payloads.base import Payload, PosInt, Text
from events.spec import DNS_LABEL, END, MAX_SECRETS, SECRET_KEY

MAX_SECRET_KEYS = 16
MAX_SECRET_BYTES = 32 * 1024
"""The most a secret's values may hold together, bytes (Kubernetes allows 1 MiB; a
revision carries each of its secrets, and an event must fit Kafka's 1 MB)."""
SEALED_CHARS = (MAX_SECRET_BYTES + MAX_SECRET_KEYS * 300 + 64) * 4 // 3 + 4
"""The longest ciphertext (base64 of nonce, sealed JSON and tag) of a secret."""

SecretName = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=DNS_LABEL)]
SecretKey = Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=SECRET_KEY)]
SecretValue = Annotated[str, msgspec.Meta(max_length=MAX_SECRET_BYTES)]
KeyId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16}" + END)]


class SecretRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What `PUT /v1/secrets/{name}` takes: the secret's values by key (its file names)."""

    values: Annotated[
        dict[SecretKey, SecretValue], msgspec.Meta(min_length=1, max_length=MAX_SECRET_KEYS)
    ]

    def size(self) -> int:
        """Bytes of the values together (UTF-8), checked against MAX_SECRET_BYTES."""
        return sum(len(value.encode()) for value in self.values.values())


class SealedSecret(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a secret, encrypted; its name, version and keys are bound to the
    ciphertext, so that a sealed value cannot be passed off as another secret's."""

    name: SecretName
    version: PosInt
    keys: Annotated[list[SecretKey], msgspec.Meta(max_length=MAX_SECRET_KEYS)]
    key_id: KeyId
    """Which sealing key: its SHA-256 prefix (a node with another key says so)."""
    ciphertext: Annotated[str, msgspec.Meta(max_length=SEALED_CHARS)]


SealedSecrets = Annotated[list[SealedSecret], msgspec.Meta(max_length=MAX_SECRETS)]
"""The secrets a revision runs with, sealed, in the order its spec names them."""


def versions_of(sealed: Iterable[SealedSecret]) -> str:
    """Secrets as `name@version`, comma-separated: all that is shown of them."""
    return ", ".join(f"{s.name}@{s.version}" for s in sealed)


class SecretScoped(Payload, frozen=True, kw_only=True):
    name: SecretName

    @property
    def key(self) -> str:
        return self.name


class SecretSet(SecretScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.secret.set"
    sealed: SealedSecret
    set_by: Text = ""


class SecretRemoved(SecretScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.secret.removed"
    removed_by: Text = ""
