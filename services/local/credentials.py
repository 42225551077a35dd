"""The local broker's principals and their credentials, made once in a folder of the
state directory that only its owner can enter (0700), one file per principal (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from events.credentials import Credentials, read_credentials, write_credentials
from events.topics import ROLES
from services.local.paths import kafka_data_dir

ADMIN = "admin"
CONTROLLER = "controller"
"""The broker's own principal on its controller listener (SASL/PLAIN)."""
SCRAM_PRINCIPALS = (ADMIN, *ROLES)


def ensure_credentials(folder: Path) -> dict[str, Credentials]:
    """Every principal's credentials, made where missing."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    found = {}
    for principal in (*SCRAM_PRINCIPALS, CONTROLLER):
        path = credentials_file(folder, principal)
        if not path.exists():
            write_credentials(path, Credentials(principal, secrets.token_urlsafe(24)))
        found[principal] = read_credentials(path)
    return found


def credentials_file(folder: Path, principal: str) -> Path:
    return folder / f"{principal}.credentials"


def role_of(module: str) -> str:
    """The principal a service (`services.<module>`) connects as."""
    return "node" if module == "node_agent" else module


def local_credentials(principal: str) -> Path:
    """A principal's credentials file of the local broker `shoal up` runs."""
    return credentials_file(credentials_dir(kafka_data_dir()), principal)


def credentials_dir(data_dir: Path) -> Path:
    """Where a broker with this data folder keeps its principals' credentials."""
    return data_dir / "credentials"
