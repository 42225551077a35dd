"""Bus credentials come from a file only its owner can read, and never show in a repr."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from events.credentials import Credentials, write_credentials
from events.settings import BadSetting, BusSettings


def test_settings_sign_in_from_a_private_file_and_hide_the_password(tmp_path: Path) -> None:
    path = tmp_path / "api.credentials"
    write_credentials(path, Credentials("api", "s3cret-password"))
    assert path.stat().st_mode & 0o777 == 0o600
    bus = BusSettings.from_env({"SHOAL_KAFKA_CREDENTIALS_FILE": str(path)})
    assert (bus.security_protocol, bus.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")
    assert (bus.sasl_username, bus.sasl_password) == ("api", "s3cret-password")
    assert "s3cret" not in repr(bus) and "s3cret" not in repr(Credentials("a", "s3cret"))
    assert bus.env()["SHOAL_KAFKA_CREDENTIALS_FILE"] == str(path)
    assert "s3cret" not in str(bus.env())


@pytest.mark.parametrize(
    ("mode", "text", "says"),
    [
        (0o644, "username=a\npassword=b\n", "owner only"),
        (0o600, "username=a\n", "username= and password="),
    ],
)
def test_a_credentials_file_open_to_others_or_incomplete_is_refused(
    tmp_path: Path, mode: int, text: str, says: str
) -> None:
    path = tmp_path / "x.credentials"
    path.write_text(text)
    os.chmod(path, mode)
    with pytest.raises(BadSetting, match=f"SHOAL_KAFKA_CREDENTIALS_FILE.*{says}"):
        BusSettings.from_env({"SHOAL_KAFKA_CREDENTIALS_FILE": str(path)})
    with pytest.raises(BadSetting, match="cannot read"):
        BusSettings.from_env({"SHOAL_KAFKA_CREDENTIALS_FILE": str(tmp_path / "missing")})
