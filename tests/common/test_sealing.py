"""Sealing: a secret opens only with its key, under its own name, version and keys; key
files are refused when others may read them or they hold no key, naming the variable."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from events.projections.secrets import SecretsProjection
from events.types import SecretRemoved, SecretSet
from services.common.sealing import (
    KEY_VALUE_VARIABLE,
    KEY_VARIABLE,
    SealingKey,
    UnsealError,
    key_from_env,
    load_key,
    make_key,
)
from services.common.settings import SettingsError

KEY = SealingKey(bytes(range(32)))
AT = datetime(2026, 11, 26, tzinfo=UTC)


def test_a_sealed_secret_opens_with_its_key_and_shows_no_value() -> None:
    sealed = KEY.seal("db", 3, {"password": "hunter2", "user": "app"})
    assert sealed.keys == ["password", "user"] and sealed.key_id == KEY.key_id
    assert b"hunter2" not in msgspec.json.encode(sealed)
    assert KEY.open(sealed) == {"password": "hunter2", "user": "app"}
    assert KEY.seal("db", 3, {"a": "b"}).ciphertext != KEY.seal("db", 3, {"a": "b"}).ciphertext


@pytest.mark.parametrize(
    "change",
    [{"name": "other"}, {"version": 4}, {"keys": ["password"]}, {"ciphertext": "AAAA" * 20}],
)
def test_a_sealed_value_moved_or_altered_does_not_open(change: dict[str, object]) -> None:
    sealed = KEY.seal("db", 3, {"password": "hunter2", "user": "app"})
    with pytest.raises(UnsealError, match=r"db|other"):
        KEY.open(msgspec.structs.replace(sealed, **change))


def test_a_secret_sealed_for_one_revision_opens_for_it_alone() -> None:
    stored = KEY.seal("db", 1, {"password": "hunter2"})
    held = KEY.reseal(stored, holder="revision-a")
    assert KEY.open(held, holder="revision-a") == {"password": "hunter2"}
    for holder in ("revision-b", ""):
        with pytest.raises(UnsealError, match="sealed for another revision"):
            KEY.open(held, holder=holder)
    assert "key=" not in repr(KEY) and str(bytes(range(32))) not in repr(KEY)


def test_another_key_says_which_key_each_is() -> None:
    sealed = KEY.seal("db", 1, {"a": "b"})
    other = SealingKey(os.urandom(32))
    with pytest.raises(UnsealError, match=f"{KEY.key_id}.*{other.key_id}"):
        other.open(sealed)


def test_key_files_are_made_private_and_refused_when_shared_or_wrong(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    make_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    first = load_key(path, KEY_VARIABLE)
    make_key(path)  # kept: a second call changes nothing
    assert load_key(path, KEY_VARIABLE) == first
    path.chmod(0o640)
    with pytest.raises(SettingsError, match=f"{KEY_VARIABLE}=.*not this user's alone"):
        load_key(path, KEY_VARIABLE)
    path.chmod(0o600)
    path.write_text("c2hvcnQ=\n")
    with pytest.raises(SettingsError, match="base64 of 32 bytes"):
        load_key(path, KEY_VARIABLE)
    with pytest.raises(SettingsError, match="cannot be read"):
        load_key(tmp_path / "missing", KEY_VARIABLE)
    (tmp_path / "link").symlink_to(path)
    with pytest.raises(SettingsError, match="cannot be read"):
        load_key(tmp_path / "link", KEY_VARIABLE)


def test_the_fold_keeps_the_newest_version_and_numbers_on_after_a_removal() -> None:
    secrets = SecretsProjection()
    first, second = KEY.seal("db", 1, {"a": "1"}), KEY.seal("db", 2, {"a": "2"})
    secrets.apply(SecretSet(name="db", sealed=second), AT)
    secrets.apply(SecretSet(name="db", sealed=first), AT)  # an older one read late
    assert secrets.secrets["db"].version == 2
    secrets.apply(SecretSet(name="other", sealed=first), AT)  # sealed under another name
    assert "other" not in secrets.secrets
    secrets.apply(SecretRemoved(name="db"), AT)
    assert "db" not in secrets.secrets and secrets.next_version("db") == 3


def test_the_key_comes_from_a_file_or_a_value_never_both(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    make_key(path)
    value = path.read_text()
    assert key_from_env({}) is None
    assert key_from_env({KEY_VARIABLE: str(path)}) == key_from_env({KEY_VALUE_VARIABLE: value})
    with pytest.raises(SettingsError, match="not both"):
        key_from_env({KEY_VARIABLE: str(path), KEY_VALUE_VARIABLE: value})
    with pytest.raises(SettingsError, match=f"{KEY_VALUE_VARIABLE} must be base64 of 32"):
        key_from_env({KEY_VALUE_VARIABLE: "bm90IGEga2V5"})
