"""Scoped tokens on the real api: each scope does its verbs and gets 403 for others, a
revoked token is refused by every api instance within 2 s, an invoke token calls only
its functions, and no token's secret is ever in the log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from events.bus import EventProducer
from events.settings import BusSettings
from events.topics import TOKENS
from services.cli.main import cli
from tests.api.conftest import TOKEN, ReplicaFactory, announce, deploy, wait_routed
from tests.support.kafka_io import raw_records
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka


@pytest.fixture
async def second_api(api: ServiceProcess) -> AsyncIterator[ServiceProcess]:
    process = api.successor("api-2")
    await process.start()
    yield process
    await process.stop()


def shoal(api: ServiceProcess, *args: str) -> Any:
    env = {"SHOAL_API_URL": api.url, "SHOAL_API_TOKEN": TOKEN}
    return CliRunner().invoke(cli, list(args), env=env)


def created(api: ServiceProcess, scope: str, *functions: str) -> str:
    args = ["token", "create", "--scope", scope, *(f"--function={f}" for f in functions)]
    result = shoal(api, *args)
    assert result.exit_code == 0, result.output
    return str(result.stdout.strip().splitlines()[-1])


async def status(http: aiohttp.ClientSession, method: str, url: str, token: str) -> int:
    body = {"name": "made", "image": "shoal-test/hello:1"} if method == "POST" else None
    async with http.request(
        method, url, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as reply:
        return reply.status


async def test_each_scope_does_its_verbs_and_gets_403_for_the_others(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    tokens = {scope: created(api, scope) for scope in ("admin", "deploy", "read")}
    tokens["invoke"] = created(api, "invoke", "made")
    calls = {
        "read": ("GET", f"{api.url}/v1/functions"),
        "deploy": ("POST", f"{api.url}/v1/functions"),
        "admin": ("GET", f"{api.url}/v1/tokens"),
    }
    allowed = {"admin": {"read", "deploy", "admin"}, "deploy": {"read", "deploy"}}
    allowed |= {"read": {"read"}, "invoke": set()}
    for scope, token in tokens.items():
        for verb, (method, url) in calls.items():
            found = await status(http, method, url, token)
            if verb in allowed[scope]:
                assert found < 300 or found == 409, (scope, verb, found)
            else:
                assert found == 403, (scope, verb, found)
    for scope, token in tokens.items():
        found = await status(http, "GET", f"{api.url}/metrics", token)
        assert found == (200 if scope != "invoke" else 401), (scope, found)
    async with http.get(f"{api.url}/metrics") as reply:
        assert reply.status == 401, "the api's port is its public one"
    listed = shoal(api, "token", "ls", "-o", "json")
    assert listed.exit_code == 0 and "shoal_" not in listed.stdout


async def test_a_revoked_token_is_refused_by_every_api_within_two_seconds(
    api: ServiceProcess, second_api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    token = created(api, "read")
    token_id = token.split("_")[1]
    for instance in (api, second_api):
        assert await until_status(http, f"{instance.url}/v1/functions", token, 200, 10) < 10
    assert shoal(api, "token", "revoke", token_id).exit_code == 0
    for instance in (api, second_api):
        waited = await until_status(http, f"{instance.url}/v1/functions", token, 401, 5)
        assert waited < 2.0, (instance.name, waited)


async def until_status(
    http: aiohttp.ClientSession, url: str, token: str, wanted: int, timeout_s: float
) -> float:
    """Seconds until `url` answers `wanted` with the token (or `timeout_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await status(http, "GET", url, token) == wanted:
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_an_invoke_token_calls_its_private_function_only_and_no_secret_is_logged(
    api: ServiceProcess,
    bus: BusSettings,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    for name in ("mine", "theirs"):
        await deploy(http, api, name, private=True)
        await announce(agent_events, name, await replica(f"{name}-r1"))
    token = created(api, "invoke", "mine")
    await wait_routed(http, api, "mine", 1)
    bearer = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{api.url}/fn/mine/", headers=bearer) as reply:
        assert reply.status == 200
        echoed = await reply.json()
    assert "authorization" not in {k.lower() for k in echoed["headers"]}
    async with http.get(f"{api.url}/fn/theirs/", headers=bearer) as reply:
        assert reply.status == 403, await reply.text()
    async with http.get(f"{api.url}/fn/mine/") as reply:
        assert reply.status == 401
    records = await raw_records(bus, TOKENS, 1)
    assert all(token.encode() not in (r.value or b"") for r in records)
    assert all(token.split("_")[1].encode() in (r.value or b"") for r in records)
