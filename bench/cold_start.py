"""First request to first 200 for a function at zero replicas, through all five parts
(api, autoscaler, scheduler, node-agent, Docker) on real Kafka, vs the floor: `docker run`
plus first 200 of the same image done directly, in the same run, trials interleaved. Both
in the default isolated mode (own network namespace, port published on 127.0.0.1) and
with host networking."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import docker

from bench.broker import kafka_bus
from bench.node_start import floor_once, percentile
from events.bus import ensure_topics
from services.local.images import ensure_test_images
from tests.support.platform import AUTH, running_platform


async def wait_at_zero(http: aiohttp.ClientSession, api: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with http.get(f"{api}/v1/functions/hello", headers=AUTH) as reply:
            status = await reply.json()
        if status["desired"] == 0 and not status["replicas"]:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the function did not return to zero")


async def measure(trials: int, network: str) -> dict[str, float]:
    """Cold starts and `docker run` floors, trials interleaved, in one network mode."""
    client = docker.from_env()
    ensure_test_images(client)
    floors: list[float] = []
    colds: list[float] = []
    with kafka_bus() as base, tempfile.TemporaryDirectory() as logs:
        bus = base.named(f"b{uuid.uuid4().hex[:8]}")
        await ensure_topics(bus)
        async with (
            running_platform(
                bus, Path(logs), client, SHOAL_LOG_LEVEL="WARNING", SHOAL_NODE_NETWORK=network
            ) as p,
            aiohttp.ClientSession() as http,
        ):
            spec = {
                "name": "hello",
                "image": "shoal-test/hello:1",
                "min_replicas": 0,
                "initial_scale": 0,
                "scale_to_zero_grace_s": 0.5,
                "stable_window_s": 6,
                "cpu": 0.2,
                "memory_mb": 32,
            }
            async with http.post(f"{p.api.url}/v1/functions", json=spec, headers=AUTH) as r:
                assert r.status == 201, await r.text()
            await floor_once(http, network)
            for _ in range(trials + 1):
                await wait_at_zero(http, p.api.url)
                floors.append(await floor_once(http, network))
                started = time.perf_counter()
                async with http.get(f"{p.api.url}/fn/hello/") as reply:
                    assert reply.status == 200, await reply.text()
                    await reply.read()
                colds.append((time.perf_counter() - started) * 1000)
    floors, colds = floors[1:], colds[1:]
    floor50, cold50 = statistics.median(floors), statistics.median(colds)
    return {
        "floor_ms_p50": round(floor50, 1),
        "cold_ms_p50": round(cold50, 1),
        "cold_ms_p99": round(percentile(colds, 0.99), 1),
        "floor_ms_p99": round(percentile(floors, 0.99), 1),
        "added_ms_p50": round(cold50 - floor50, 1),
        "trials": trials,
    }


def report(modes: dict[str, dict[str, float]]) -> dict[str, float]:
    """The table of both modes; the figures of the default (isolated) mode, and the
    host-network ones beside them with a `host_` prefix."""
    print(f"{'mode':<10} {'path':<32} {'n':>4} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, found in modes.items():
        trials = int(found["trials"])
        print(
            f"{mode:<10} {'floor: docker run + first 200':<32} {trials:>4} "
            f"{found['floor_ms_p50']:>8.1f} {found['floor_ms_p99']:>8.1f}"
        )
        print(
            f"{mode:<10} {'cold start through Shoal':<32} {trials:>4} "
            f"{found['cold_ms_p50']:>8.1f} {found['cold_ms_p99']:>8.1f}"
        )
        print(f"{mode:<10} added at p50: {found['added_ms_p50']:.1f} ms (target: within 100 ms)")
    result = dict(modes["bridge"])
    result |= {f"host_{key}": value for key, value in modes["host"].items() if key != "trials"}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 trials instead of 20")
    args = parser.parse_args()
    trials = 5 if args.quick else 20
    modes = {mode: asyncio.run(measure(trials, mode)) for mode in ("bridge", "host")}
    print(json.dumps(report(modes)))


if __name__ == "__main__":
    main()
