"""Two api instances on real Kafka and Docker: they share each replica's concurrency limit
(a function with limit 1 never serves two calls at once in one replica, whichever api
they come through, even when the api that held the slot is paused past its session and
wakes), and losing one under load fails few calls while it dies and none after. The
log's invariants hold throughout."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.settings import BusSettings
from services.common.labels import LABEL_FUNCTION
from services.local.images import ensure_test_images
from tests.support.invariants import assert_log_holds
from tests.support.platform import AUTH, Platform, call, eventually, running_platform, status_of
from tests.support.service_process import ServiceProcess
from tests.support.spread import spread_load

pytestmark = [pytest.mark.kafka, pytest.mark.docker]
PEERS = re.compile(r"^shoal_api_peers\{[^}]*\} (\d+)\.0$", re.M)
RELAYED = re.compile(r"^shoal_api_relayed_total\{[^}]*\} (\d+)\.0$", re.M)


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(bus, tmp_path, docker_client) as parts:
        yield parts


async def metric(api: ServiceProcess, pattern: re.Pattern[str]) -> int:
    """A metric's value on an api's /metrics (0 when absent or unreachable)."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{api.url}/metrics", headers=AUTH) as reply,
        ):
            found = pattern.findall(await reply.text())
    except aiohttp.ClientError:
        return 0
    return int(found[0]) if found else 0


async def both_apis(cluster: Platform) -> ServiceProcess:
    """A second api beside the first, once each knows the other."""
    second = await cluster.api.successor("api-2").start()
    deadline = time.monotonic() + 20
    while [await metric(api, PEERS) for api in (cluster.api, second)] != [2, 2]:
        assert time.monotonic() < deadline, "the two apis did not find each other"
        await asyncio.sleep(0.2)
    return second


async def deployed(cluster: Platform, name: str, **spec: Any) -> None:
    body = {"name": name, "cpu": 0.1, "memory_mb": 32, **spec}
    await call("POST", f"{cluster.api.url}/v1/functions", body, 201)
    replicas = spec.get("min_replicas", 1)
    await eventually(lambda: status_of(cluster, name), lambda s: s["ready"] == replicas, 60)


def overlapped(docker_client: Any, name: str) -> list[str]:
    """The replicas of `name` that ever served two calls at once."""
    found = []
    for container in docker_client.containers.list(filters={"label": f"{LABEL_FUNCTION}={name}"}):
        code, _ = container.exec_run(["sh", "-c", "[ ! -d /tmp/overlapped ]"])
        if code != 0:
            found.append(container.name)
    return found


async def test_a_limit_of_one_holds_across_two_api_instances(
    cluster: Platform, docker_client: Any, bus: BusSettings
) -> None:
    second = await both_apis(cluster)
    try:
        await deployed(
            cluster,
            "one-at-a-time",
            image="shoal-test/sleep:1",
            env={"SLEEP_S": "0.1"},
            concurrency_limit=1,
            min_replicas=1,
            max_replicas=1,
        )
        urls = [cluster.api.url, second.url]
        async with spread_load(urls, "/fn/one-at-a-time/cgi-bin/alone", workers=6) as load:
            await asyncio.sleep(8)
        bodies = {a.body.strip() for a in load.answers}
        assert load.ratio() == 1.0, [a for a in load.answers if a.status != 200][:3]
        assert bodies == {b"alone"}, bodies
        assert load.served_by(urls[0]) > 10 and load.served_by(urls[1]) > 10
        assert overlapped(docker_client, "one-at-a-time") == []
        relayed = [await metric(api, RELAYED) for api in (cluster.api, second)]
        assert sorted(relayed)[0] == 0 and sorted(relayed)[1] > 10, "one holds the slot"
        await assert_log_holds(bus, grace_s=0)
    finally:
        await second.stop()


async def test_an_api_paused_past_its_session_does_not_use_the_share_it_held(
    cluster: Platform, docker_client: Any
) -> None:
    second = await both_apis(cluster)
    try:
        await deployed(
            cluster,
            "paused",
            image="shoal-test/sleep:1",
            env={"SLEEP_S": "0.1"},
            concurrency_limit=1,
            min_replicas=1,
            max_replicas=1,
        )
        apis = [cluster.api, second]
        async with spread_load([a.url for a in apis], "/fn/paused/cgi-bin/alone") as load:
            await asyncio.sleep(2)
            relayed = [await metric(api, RELAYED) for api in apis]
            holder = apis[relayed.index(0)]  # the one with the slot relays nothing
            assert holder.process is not None
            holder.process.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(6)  # past its session: the other takes the slot
            finally:
                holder.process.send_signal(signal.SIGCONT)
            await asyncio.sleep(4)
        assert {a.body.strip() for a in load.answers} == {b"alone"}
        assert load.ratio() == 1.0, [a for a in load.answers if a.status != 200][:3]
        assert overlapped(docker_client, "paused") == []
    finally:
        await second.stop()


async def test_killing_one_of_two_apis_under_load_fails_few_calls_and_none_after(
    cluster: Platform, bus: BusSettings
) -> None:
    second = await both_apis(cluster)
    try:
        await deployed(
            cluster,
            "shared",
            image="shoal-test/hello:1",
            concurrency_limit=2,
            min_replicas=2,
            max_replicas=4,
        )
        urls = [cluster.api.url, second.url]
        async with spread_load(urls, "/fn/shared/", workers=6) as load:
            await asyncio.sleep(3)
            killed = time.monotonic()
            await second.kill()
            await asyncio.sleep(10)
        during = load.ratio(killed - 1, killed + 5)
        after = load.ratio(killed + 5)
        assert load.count(killed - 1, killed + 5) > 20 and load.count(killed + 5) > 20
        assert during >= 0.90, f"{during:.3f} of calls succeeded while an api died"
        assert after == 1.0, f"{after:.3f} of calls succeeded after it died"
        await assert_log_holds(bus, grace_s=0)
    finally:
        await second.stop()
