"""Density on one node: N replicas of a busybox function (0.1 CPU limit, 0.001 CPU and
4 MB requested, 16 MB limit; a limit of 0.01 CPU makes each start take 2-3 s of throttled
time in the engine alone) on one node-agent of this machine, through the whole
platform: time until all are ready, the start rate, the node-agent's and dockerd's RSS at
N; then the function scaled to zero, and the time from that decision until no container
of it is left. Baseline, in the same run: the same N containers (same image, limits and
isolation) started and removed straight through the engine, 8 at a time. `--quick`: 200."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

from bench.broker import bench_platform
from bench.chaos import deploy
from events.topics import REPLICAS, SCALE
from events.types import ReplicaReady, ScaleDecision
from services.common.labels import LABEL_FUNCTION
from tests.support.event_log import EventLog
from tests.support.platform import call

SPEC = {
    "cpu": 0.1,
    "cpu_request": 0.001,
    "memory_mb": 16,
    "memory_request_mb": 4,
    "readiness_path": "/",
    "max_scale_down_rate": 1000,
    "scale_to_zero_grace_s": 0,
}
RAW_THREADS = 8


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dockerd_pid() -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "dockerd":
                    return int(proc.name)
            except OSError:
                continue
    raise RuntimeError("no dockerd process")


def raw_engine(client: Any, count: int, network: str) -> tuple[float, float]:
    """Seconds to start `count` containers straight through the engine, and to remove them."""

    def start(n: int) -> Any:
        where: dict[str, Any] = (
            {"network_mode": "host", "environment": {"PORT": str(20000 + n), "HOST": "127.0.0.1"}}
            if network == "host"
            else {"ports": {"8080/tcp": ("127.0.0.1", None)}}
        )
        return client.containers.run(
            "shoal-test/hello:1",
            name=f"density-raw-{n}",
            detach=True,
            init=True,
            nano_cpus=100_000_000,
            mem_limit="16m",
            labels={"dev.shoal.bench": "density"},
            **where,
        )

    began = time.monotonic()
    with ThreadPoolExecutor(RAW_THREADS) as pool:
        made = list(pool.map(start, range(count)))
    started = time.monotonic() - began
    began = time.monotonic()
    with ThreadPoolExecutor(RAW_THREADS) as pool:
        list(pool.map(lambda c: c.remove(force=True), made))
    return started, time.monotonic() - began


async def containers_left(client: Any, function: str) -> int:
    found = await asyncio.to_thread(
        client.api.containers, all=True, filters={"label": f"{LABEL_FUNCTION}={function}"}
    )
    return len(found)


async def run(count: int, network: str) -> dict[str, Any]:
    client = docker.from_env(timeout=120)
    raw_start_s, raw_remove_s = await asyncio.to_thread(raw_engine, client, count, network)
    options = {
        "SHOAL_NODE_NETWORK": network,
        "SHOAL_NODE_MAX_REPLICAS": str(count + 50),
        "SHOAL_AUTOSCALER_MAX_REPLICAS": str(count),
        "SHOAL_NODE_PORT_FIRST": "30000",  # `shoal up`'s range: run it with the platform down
        "SHOAL_NODE_PORT_LAST": "32767",
    }
    async with bench_platform("d", **options) as (platform, bus):
        api = platform.api.url
        async with EventLog(bus, [REPLICAS, SCALE]) as log:
            began = time.monotonic()
            await deploy(
                api, "dense", **SPEC, min_replicas=count, initial_scale=count, max_replicas=count
            )
            await log.wait_for(
                ReplicaReady, lambda r: r.function == "dense", count=count, timeout_s=3600
            )
            all_ready_s = time.monotonic() - began
            agent = platform.agents[0].process
            assert agent is not None
            agent_rss, dockerd_rss = rss_mb(agent.pid), rss_mb(dockerd_pid())
            await call(
                "PATCH",
                f"{api}/v1/functions/dense",
                {"min_replicas": 0, "initial_scale": 0},
            )
            await call("POST", f"{api}/v1/functions/dense/scale", {"replicas": 0}, expect=202)
            await log.wait_for(ScaleDecision, lambda d: d.function == "dense" and d.desired == 0)
            decided = time.monotonic()
            for _ in range(3000):  # at most 10 minutes
                if not await containers_left(client, "dense"):
                    break
                await asyncio.sleep(0.2)
            all_gone_s = time.monotonic() - decided
    return {
        "replicas": count,
        "network": network,
        "all_ready_s": round(all_ready_s, 2),
        "start_rate": round(count / all_ready_s, 1),
        "all_gone_s": round(all_gone_s, 2),
        "agent_rss_mb": round(agent_rss, 1),
        "dockerd_rss_mb": round(dockerd_rss, 1),
        "raw_start_s": round(raw_start_s, 2),
        "raw_remove_s": round(raw_remove_s, 2),
    }


def report(found: dict[str, Any]) -> None:
    n = found["replicas"]
    print(f"network: {found['network']}")
    print(f"{'':<38}{'Shoal':>12}{'engine alone':>14}")
    started = f"{n} replicas started and ready (s)"
    print(f"{started:<38}{found['all_ready_s']:>12}{found['raw_start_s']:>14}")
    print(
        f"{'scaled to zero, all gone (s)':<38}{found['all_gone_s']:>12}{found['raw_remove_s']:>14}"
    )
    print(
        f"start rate {found['start_rate']}/s; node-agent RSS {found['agent_rss_mb']} MB, "
        f"dockerd RSS {found['dockerd_rss_mb']} MB at {n}"
    )
    print(json.dumps(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 replicas")
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument(
        "--network",
        choices=("bridge", "host"),
        default="bridge",
        help="bridge: each replica in its own network, its port published (the default); "
        "host: the host's network, for trusted code",
    )
    args = parser.parse_args()
    report(asyncio.run(run(200 if args.quick else args.replicas, args.network)))


if __name__ == "__main__":
    main()
