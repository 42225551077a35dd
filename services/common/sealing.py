"""Sealing secrets: AES-256-GCM (the `cryptography` library) with a key kept outside Kafka,
in a file only its owner can read. The api seals a secret's values; a node-agent opens
them into a replica's files. Name, version and keys are bound to each ciphertext as
associated data, so that a sealed value moved onto another secret fails to open."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.types import SealedSecret
from services.common.settings import SettingsError

KEY_VARIABLE = "SHOAL_SECRETS_KEY_FILE"
"""Where the api and the node-agents find the sealing key: a file of the operator's ..."""
KEY_VALUE_VARIABLE = "SHOAL_SECRETS_KEY"
"""... or the key itself, base64 (from a Kubernetes Secret or compose's .env)."""
KEY_SOURCES = f"{KEY_VARIABLE} or {KEY_VALUE_VARIABLE}"
KEY_BYTES = 32
NONCE_BYTES = 12
_values = msgspec.json.Decoder(dict[str, str])


class UnsealError(ValueError):
    """A sealed secret could not be opened: another key, or it was tampered with."""


def _bound(name: str, version: int, keys: list[str], holder: str) -> bytes:
    """What a ciphertext is bound to besides its key (associated data): the secret's name,
    version and keys, and who may hold it ('' on the secrets topic; a revision's identity,
    `spec_identity`, once sealed for it)."""
    return msgspec.json.encode(["shoal-secret/2", name, version, keys, holder])


@dataclass(frozen=True)
class SealingKey:
    key: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"shoal-sealing-key\0" + self.key).hexdigest()[:16]

    def seal(
        self, name: str, version: int, values: dict[str, str], *, holder: str = ""
    ) -> SealedSecret:
        keys = sorted(values)
        nonce = os.urandom(NONCE_BYTES)
        plain = msgspec.json.encode({key: values[key] for key in keys})
        sealed = AESGCM(self.key).encrypt(nonce, plain, _bound(name, version, keys, holder))
        return SealedSecret(
            name=name,
            version=version,
            keys=keys,
            key_id=self.key_id,
            ciphertext=base64.b64encode(nonce + sealed).decode("ascii"),
        )

    def reseal(self, sealed: SealedSecret, holder: str) -> SealedSecret:
        """The same values, sealed for `holder` alone."""
        values = self.open(sealed)
        return self.seal(sealed.name, sealed.version, values, holder=holder)

    def open(self, sealed: SealedSecret, *, holder: str = "") -> dict[str, str]:
        """The values, by key; UnsealError when this key cannot open them for `holder`."""
        what = f"secret {sealed.name} version {sealed.version}"
        if sealed.key_id != self.key_id:
            raise UnsealError(
                f"{what} was sealed with key {sealed.key_id}, this node has {self.key_id}"
            )
        try:
            raw = base64.b64decode(sealed.ciphertext, validate=True)
            plain = AESGCM(self.key).decrypt(
                raw[:NONCE_BYTES],
                raw[NONCE_BYTES:],
                _bound(sealed.name, sealed.version, sealed.keys, holder),
            )
            values = _values.decode(plain)
        except (InvalidTag, ValueError, msgspec.DecodeError) as exc:
            raise UnsealError(
                f"{what} does not open: it was altered, or sealed for another revision"
            ) from exc
        if sorted(values) != sealed.keys:
            raise UnsealError(f"{what} does not open: its keys differ from its record")
        return values


def load_key(path: Path, variable: str) -> SealingKey:
    """The key of a file of this process's user that only its owner may read (base64 of 32
    bytes), no link; SettingsError, naming `variable`, otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SettingsError(f"{variable}={str(path)!r} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd) as opened:
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 or info.st_uid != os.geteuid():
            raise SettingsError(
                f"{variable}={str(path)!r} is not this user's alone (owner uid {info.st_uid}, "
                f"mode {mode:o}); chmod 400 it"
            )
        text = opened.read(256).strip()
    return _decoded(text, f"{variable}={str(path)!r} must hold")


def _decoded(text: str, problem: str) -> SealingKey:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise SettingsError(f"{problem} base64 of {KEY_BYTES} bytes")
    return SealingKey(key)


def make_key(path: Path) -> None:
    """Write a new random key, owner read-only, unless the file exists."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii") + "\n")


def key_from_env(environ: Mapping[str, str]) -> SealingKey | None:
    """The key of KEY_VARIABLE's file or KEY_VALUE_VARIABLE's value, or None when neither
    is set (secrets are then refused)."""
    path, value = environ.get(KEY_VARIABLE, ""), environ.get(KEY_VALUE_VARIABLE, "")
    if path and value:
        raise SettingsError(f"set {KEY_VARIABLE} or {KEY_VALUE_VARIABLE}, not both")
    if value:
        return _decoded(value.strip(), f"{KEY_VALUE_VARIABLE} must be")
    return load_key(Path(path), KEY_VARIABLE) if path else None
