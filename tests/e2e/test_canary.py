"""Progressive delivery end to end, under steady load: a canary answering 500 is rolled
back within 30 s of its first step having failed no more than its share of the calls; a
healthy one is promoted through every step with no failed call; a slow one is rolled back
for latency; a user's 90/10 split holds within 3 points over 2,000 calls; a tag reaches
its revision, by path and by header. Each step and its numbers are in the audit trail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner, Result

from events.settings import BusSettings
from events.topics import FUNCTIONS, REPLICAS, SCALE
from events.types import CanaryAnalysed, FunctionRolledBack, ReplicaReady
from services.cli.main import cli
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.invariants import assert_log_holds
from tests.support.load import REVISION, steady_load
from tests.support.platform import (
    TOKEN,
    Platform,
    call,
    eventually,
    running_platform,
    status_of,
)

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

CANARY = {
    "rollout": "canary",
    "canary_steps": [5, 25, 50],
    "canary_step_s": 3,
    "canary_min_requests": 10,
    "cpu": 0.1,
    "memory_mb": 32,
}


@pytest.fixture
async def cluster(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(
        bus, tmp_path, docker_client, agents=1, SHOAL_HEALER_TICK_S="0.5"
    ) as parts:
        yield parts


@pytest.fixture
async def log(bus: BusSettings) -> AsyncIterator[EventLog]:
    async with EventLog(bus, [FUNCTIONS, SCALE, REPLICAS]) as events:
        yield events


async def deploy(cluster: Platform, log: EventLog, name: str, **spec: Any) -> None:
    body = {"name": name, "min_replicas": 2, "initial_scale": 2, **CANARY, **spec}
    await call("POST", f"{cluster.api.url}/v1/functions", body, expect=201)
    await log.wait_for(ReplicaReady, lambda r: r.function == name, count=2, timeout_s=60)


async def replace(cluster: Platform, name: str, **spec: Any) -> None:
    body = {"min_replicas": 2, "initial_scale": 2, **CANARY, **spec}
    await call("PUT", f"{cluster.api.url}/v1/functions/{name}", body)


def shoal(cluster: Platform, bus: BusSettings, *args: str) -> Result:
    env = {"SHOAL_API_URL": cluster.api.url, "SHOAL_API_TOKEN": TOKEN, **bus.env()}
    return CliRunner().invoke(cli, list(args), env=env)


def when(log: EventLog, kind: type, where: Any) -> float:
    """The wall-clock time of the first event of a kind that matches."""
    return next(
        e.time.timestamp() for e in log.events if isinstance(e.data, kind) and where(e.data)
    )


async def test_a_failing_canary_rolls_back_and_a_healthy_one_is_promoted(
    cluster: Platform, log: EventLog, bus: BusSettings
) -> None:
    await deploy(cluster, log, "shop", image="shoal-test/hello:1")
    async with steady_load(f"{cluster.api.url}/fn/shop/") as load:
        await asyncio.sleep(1)
        await replace(cluster, "shop", image="shoal-test/fail:1", readiness_path="")
        rolled = await log.wait_for(
            FunctionRolledBack, lambda e: e.function == "shop", timeout_s=60
        )
        first = when(
            log, CanaryAnalysed, lambda e: e.function == "shop" and e.decision == "promote"
        )
        back = when(log, FunctionRolledBack, lambda e: e.function == "shop")
        assert back - first <= 30, f"rolled back {back - first:.1f} s after the first step"
        assert (rolled[0].from_revision, rolled[0].to_revision) == (2, 1)
        assert rolled[0].inputs["canary_error_ratio"] == 1.0, rolled[0].inputs
        await asyncio.sleep(1)
        failed, total = load.failed_share(first, back + 1)
        assert total > 100 and failed <= 0.06 * total, f"{failed} of {total} failed"
        await replace(cluster, "shop", image="shoal-test/hello:1", env={"V": "3"})
        await log.wait_for(
            CanaryAnalysed, lambda e: e.revision == 3 and e.percent == 100, timeout_s=90
        )
        status = await eventually(
            lambda: status_of(cluster, "shop"),
            lambda s: (
                s["traffic"]["canary"] is None and {r["revision"] for r in s["replicas"]} == {3}
            ),
            timeout_s=30,
        )
        assert status["traffic"]["split"] == [{"revision": 3, "percent": 100}]
        await asyncio.sleep(1)
    after = when(log, CanaryAnalysed, lambda e: e.revision == 3)
    assert load.failed_share(after, time.time()) == (
        0,
        len([a for a in load.answers if a[0] >= after]),
    )
    promoted = [
        e.percent
        for e in log.of(CanaryAnalysed, lambda e: e.revision == 3 and e.decision == "promote")
    ]
    assert promoted == [5, 25, 50, 100]
    assert load.revisions(after)["3"] > 100
    audited = await asyncio.to_thread(shoal, cluster, bus, "audit", "--function", "shop")
    assert audited.exit_code == 0, audited.output
    story = audited.output
    assert "canary shop r2 vs r1: promoted to 5% (step 1)" in story
    assert "rolled back shop revision 2 -> 1: canary aborted at step 1: 5xx ratio 100.0%" in story
    assert "canary shop r3 vs r1: promoted to 100%" in story
    await assert_log_holds(bus, grace_s=5)


async def test_a_slow_canary_is_rolled_back_for_its_latency(
    cluster: Platform, log: EventLog
) -> None:
    await deploy(cluster, log, "slowpoke", image="shoal-test/slow:1", env={"SLEEP_S": "0.05"})
    async with steady_load(f"{cluster.api.url}/fn/slowpoke/", workers=6) as load:
        await asyncio.sleep(1)
        await replace(cluster, "slowpoke", image="shoal-test/slow:1", env={"SLEEP_S": "0.25"})
        rolled = await log.wait_for(
            FunctionRolledBack, lambda e: e.function == "slowpoke", timeout_s=60
        )
    assert "p95 latency" in rolled[0].reason, rolled[0].reason
    assert rolled[0].inputs["canary_p95_ms"] > 2 * rolled[0].inputs["stable_p95_ms"]
    load.assert_no_failures()


async def test_a_manual_split_holds_and_tags_reach_their_revision(
    cluster: Platform, log: EventLog, bus: BusSettings
) -> None:
    await deploy(cluster, log, "split", image="shoal-test/hello:1", rollout="immediate")
    await replace(cluster, "split", image="shoal-test/hello:1", env={"V": "2"}, rollout="immediate")
    await eventually(
        lambda: status_of(cluster, "split"),
        lambda s: {r["revision"] for r in s["replicas"] if r["state"] == "ready"} == {2},
        timeout_s=60,
    )
    for args in (("traffic", "split", "r1=90", "r2=10"), ("tag", "split", "r1", "old")):
        done = await asyncio.to_thread(shoal, cluster, bus, *args)
        assert done.exit_code == 0, done.output
    await eventually(
        lambda: status_of(cluster, "split"),
        lambda s: sorted({r["revision"] for r in s["replicas"] if r["state"] == "ready"}) == [1, 2],
        timeout_s=60,
    )
    async with steady_load(f"{cluster.api.url}/fn/split/") as load:
        for _ in range(300):  # at most 60 s
            if load.total >= 2000:
                break
            await asyncio.sleep(0.2)
    load.assert_no_failures()
    described = await asyncio.to_thread(shoal, cluster, bus, "describe", "split")
    assert "r1 90%, r2 10%" in described.output and "old -> r1" in described.output
    share = load.revisions()["2"] / load.total
    assert abs(share - 0.10) <= 0.03, load.revisions()
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            async with http.get(f"{cluster.api.url}/fn/split@old/") as reply:
                assert (reply.status, reply.headers[REVISION]) == (200, "1")
            async with http.get(
                f"{cluster.api.url}/fn/split/", headers={"Shoal-Tag": "old"}
            ) as reply:
                assert (reply.status, reply.headers[REVISION]) == (200, "1")
        async with http.get(f"{cluster.api.url}/fn/split@nope/") as reply:
            assert reply.status == 404 and "no tag 'nope'" in (await reply.json())["error"]
    url = f"{cluster.api.url}/v1/functions/split"
    bad = await call(
        "PUT", f"{url}/traffic", {"targets": [{"revision": 1, "percent": 50}]}, expect=422
    )
    assert "sum to 50" in bad["fields"][0]["message"]
    await call("PUT", f"{url}/traffic", {"targets": [{"revision": 9, "percent": 100}]}, expect=404)
