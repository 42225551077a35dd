"""Where the repository and its local state folder are."""

from __future__ import annotations

import os
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
