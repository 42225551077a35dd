"""Secrets on the real api and broker: set, listed by name and version, named by a spec,
rotated (a new revision of each function that uses it), refused when bad, and never in
plaintext on any topic, in any answer, the api's log or `shoal replay`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from events.payloads.secrets import MAX_SECRET_BYTES
from events.settings import BusSettings
from services.cli.main import cli
from tests.api.conftest import TOKEN, deploy
from tests.support.kafka_io import every_record_value
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka
PLAIN = "correct-horse-battery-staple-7f3a"


def shoal(api: ServiceProcess, bus: BusSettings, *args: str, token: str = TOKEN) -> Any:
    env = {"SHOAL_API_URL": api.url, "SHOAL_API_TOKEN": token, **bus.env()}
    return CliRunner().invoke(cli, list(args), env=env)


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, token: str = TOKEN
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, url, json=body, headers=headers) as reply:
        return reply.status, await reply.json()


async def test_a_secret_is_set_named_rotated_and_never_shown(
    api: ServiceProcess, bus: BusSettings, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    value_file = tmp_path / "password"
    value_file.write_text(PLAIN)
    made = shoal(api, bus, "secret", "set", "db", "user=app", f"--from-file=password={value_file}")
    assert made.exit_code == 0, made.output
    assert "version 1" in made.output

    status, body = await call(
        http, "POST", f"{api.url}/v1/functions", {"name": "f", "image": "x:1", "secrets": ["nope"]}
    )
    assert status == 409 and body["fields"][0]["field"] == "secrets", body
    deployed = await deploy(http, api, "f", secrets=["db"])
    assert deployed["spec"]["secrets"] == ["db"] and deployed["secrets"] == {"db": 1}

    rotated = shoal(api, bus, "secret", "set", "db", f"password={PLAIN}-2", "user=app")
    assert rotated.exit_code == 0, rotated.output
    assert "f rolls out revision 2" in rotated.output
    status, function = await call(http, "GET", f"{api.url}/v1/functions/f")
    assert function["revision"] == 2 and function["secrets"] == {"db": 2}

    listed = shoal(api, bus, "secret", "ls", "-o", "json")
    assert listed.exit_code == 0 and '"version": 2' in listed.output
    assert '"used_by": [\n      "f"' in listed.output.replace("\r", "")
    status, refused = await call(http, "DELETE", f"{api.url}/v1/secrets/db")
    assert status == 409 and "f" in refused["error"]

    replayed = await asyncio.to_thread(shoal, api, bus, "replay")  # the CLI runs its own loop
    audit = await asyncio.to_thread(shoal, api, bus, "audit")
    assert replayed.exit_code == 0 and audit.exit_code == 0, replayed.output + audit.output
    assert "db@2" in replayed.output + audit.output
    answers = [
        (await call(http, "GET", f"{api.url}/v1/{path}"))[1]
        for path in ("functions", "secrets", "functions/f")
    ]
    seen = {
        "every topic": await every_record_value(bus),
        "answers": repr(answers).encode(),
        "cli": (
            made.output + rotated.output + listed.output + replayed.output + audit.output
        ).encode(),
        "api log": api.log_path.read_bytes(),
    }
    for where, text in seen.items():
        assert PLAIN.encode() not in text, f"the secret's value is in {where}"


async def test_bad_secrets_and_scopes_are_refused_with_what_is_wrong(
    api: ServiceProcess, http: aiohttp.ClientSession, bus: BusSettings
) -> None:
    url = f"{api.url}/v1/secrets"
    cases = [
        ("PUT", "/Bad_Name", {"values": {"a": "b"}}, 422, "name"),
        ("PUT", "/ok", {"values": {}}, 422, "values"),
        ("PUT", "/ok", {"values": {"../etc": "x"}}, 422, "values"),
        ("PUT", "/ok", {"values": {".hidden": "x"}}, 422, "values"),
        (
            "PUT",
            "/ok",
            {"values": {"a": "x" * (MAX_SECRET_BYTES - 10), "b": "y" * 20}},
            422,
            "values",
        ),
        ("PUT", "/ok", {"values": {"a": "b"}, "extra": 1}, 422, "values"),
        ("PUT", "/ok", {"values": {"a": "\u0001" * 8000}}, 422, "values"),  # 6 bytes sealed
        ("PUT", "/db%0A", {"values": {"a": "b"}}, 422, "name"),
        ("PUT", "/ok", {"values": {"a\n": "b"}}, 422, "values"),
        ("DELETE", "/missing", None, 404, None),
    ]
    for method, path, body, expected, field in cases:
        status, answer = await call(http, method, url + path, body)
        assert status == expected, (path, body, answer)
        if field:
            assert answer["fields"][0]["field"] == field, answer
    reader = shoal(api, bus, "token", "create", "--scope", "read").stdout.strip().splitlines()[-1]
    status, _ = await call(http, "PUT", f"{url}/ok", {"values": {"a": "b"}}, token=reader)
    assert status == 403
    status, listed = await call(http, "GET", url, token=reader)
    assert status == 200 and listed == {"secrets": []}
    usage = shoal(api, bus, "secret", "set", "ok", "hunter2")
    assert usage.exit_code != 0 and "KEY=VALUE" in usage.output
    assert "hunter2" not in usage.output, "a mistyped value is not echoed"


async def test_without_a_sealing_key_secrets_are_refused_not_stored(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    keyless = api.successor("api-keyless", SHOAL_SECRETS_KEY_FILE="")
    await keyless.start()
    try:
        status, answer = await call(
            http, "PUT", f"{keyless.url}/v1/secrets/db", {"values": {"a": "b"}}
        )
    finally:
        await keyless.stop()
    assert status == 503 and "SHOAL_SECRETS_KEY_FILE" in answer["error"]
