"""The local broker's secrets on disk: a 0700 folder of 0600 credential files (one per
principal, made once), a 0600 config offering SASL only, and old unauthenticated data
refused with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.credentials import read_credentials
from events.topics import ROLES
from services.local.kafka_broker import BrokerError, BrokerLayout, LocalKafkaBroker


def test_credentials_are_made_once_and_the_config_is_private(tmp_path: Path) -> None:
    broker = LocalKafkaBroker(BrokerLayout(data_dir=tmp_path))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "meta.properties").write_text("old")
    with pytest.raises(BrokerError, match="made by an older Shoal"):
        broker.ensure_formatted()
    folder = broker.layout.credentials_dir
    assert folder.stat().st_mode & 0o777 == 0o700
    first = {p.name: read_credentials(p) for p in folder.iterdir()}
    assert set(first) == {f"{n}.credentials" for n in (*ROLES, "admin", "controller")}
    assert len({c.password for c in first.values()}) == len(first)
    config = broker.layout.properties_file
    assert config.stat().st_mode & 0o777 == 0o600
    text = config.read_text()
    assert "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT" in text
    assert first["admin.credentials"].password in text
    with pytest.raises(BrokerError):
        broker.ensure_formatted()
    again = {p.name: read_credentials(p) for p in folder.iterdir()}
    assert again == first
