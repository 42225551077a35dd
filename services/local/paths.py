"""Where the repository and its local state folder are."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """The project-local state folder (Kafka jars and data, logs, pid files)."""
    return Path(os.environ.get("SHOAL_STATE", REPO_ROOT / ".shoal"))


def kafka_data_dir() -> Path:
    """The local broker's data (storage, config, credentials) that `shoal up` runs."""
    return state_dir() / "kafka" / "data"


def kafka_jars_dir() -> Path:
    return state_dir() / "kafka" / "jars"


PRIVATE_UMASK = 0o077
"""What Shoal's own processes (the broker, the services) create is their owner's only."""


def private_dir(path: Path) -> Path:
    """`path`, made if missing, that only its owner may enter (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def private_log(path: Path) -> int:
    """A file descriptor appending to the log at `path` (0600, in a 0700 folder)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def token_file(path: Path) -> str:
    """A random token kept in `path`, made once, readable by its owner only (0600 from
    the moment it exists)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
    return path.read_text().strip()
