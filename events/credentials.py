"""A principal's credentials for the bus, read from a file that only its owner can read
(mode 0600): `username=...` and `password=...` lines. Never from the environment, so a
password shows up in no process listing and no function's environment."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path


class CredentialsError(ValueError):
    """The credentials file is missing, readable by others, or not username/password."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


def read_credentials(path: Path) -> Credentials:
    try:
        mode = os.stat(path).st_mode
        text = path.read_text()
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"credentials {path} must be readable by its owner only (0600)")
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line.strip())
    username, password = fields.get("username", "").strip(), fields.get("password", "").strip()
    if not username or not password:
        raise CredentialsError(f"credentials {path} must hold username= and password= lines")
    return Credentials(username, password)


def write_credentials(path: Path, credentials: Credentials) -> None:
    """Made with mode 0600 from the start (no moment readable by others), whole or not at
    all: written beside, then renamed into place."""
    beside = path.with_name(f".{path.name}.new")
    beside.unlink(missing_ok=True)
    fd = os.open(beside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"username={credentials.username}\npassword={credentials.password}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(beside, path)
