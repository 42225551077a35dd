"""The api's request path vs calling the replica directly, with wrk, in the same run: in
the default isolated mode (the replica in its own network namespace, its port published
on 127.0.0.1 by Docker) and with host networking.

The replica is a real container (shoal-test/hello, busybox httpd); the api runs as its
own process and learns the replica from a ReplicaReady event, as in production. wrk, the
api and the replica share this machine's 2 cores, so the proxied figures include the api
competing with the load generator for CPU."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import docker

from bench.broker import kafka_bus
from events.bus import EventProducer, ensure_topics
from events.types import ReplicaReady
from services.local.images import ensure_test_images
from services.node_agent.docker_calls import ensure_replica_network
from services.node_agent.sandbox import REPLICA_NETWORK
from tests.support.ports import free_port
from tests.support.service_process import ServiceProcess

TOKEN = "bench-token-0123456789"
PAIRS_AT_MOST = 3
"""Pairs (direct, then through the api) at the most connections; the throughput ratio is
their median: this machine's speed drifts by a tenth or more within a run, and a pair
measured seconds apart shares the drift."""
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids: list[int]) -> tuple[int, int]:
    """Busy ticks of the whole machine (all but idle and iowait), and of the processes."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]
    own = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own += int(stat[11]) + int(stat[12])
    return busy, own


def wrk(url: str, connections: int, seconds: int, pids: list[int]) -> dict[str, float]:
    """wrk's figures, and the CPU time per request of the machine and of `pids`."""
    busy0, own0 = cpu_ticks(pids)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    busy1, own1 = cpu_ticks(pids)
    latency = {
        q: float(v) * UNITS[u]
        for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None or set(latency) != {"50", "99"}:
        raise RuntimeError(f"could not read wrk's report:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    requests = max(1, int(done.group(1))) if done else 1
    return {
        "machine_us": round((busy1 - busy0) * TICK_US / requests, 1),
        "api_us": round((own1 - own0) * TICK_US / requests, 1),
        "p50": latency["50"],
        "p99": latency["99"],
        "rps": float(rps.group(1)),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def replica_options(network: str, port: int) -> dict[str, Any]:
    """The replica container on `port` of 127.0.0.1, in a node-agent's network mode."""
    if network == "host":
        return {"network_mode": "host", "environment": {"PORT": str(port), "HOST": "127.0.0.1"}}
    ensure_replica_network(docker.from_env(), REPLICA_NETWORK, {})
    return {
        "network": REPLICA_NETWORK,
        "ports": {"8080/tcp": ("127.0.0.1", port)},
        "environment": {"PORT": "8080", "HOST": "0.0.0.0"},
    }


async def measure(
    levels: list[int], seconds: int, instances: int, network: str
) -> dict[str, object]:
    client = docker.from_env()
    ensure_test_images(client)
    port = free_port()
    container = client.containers.run(
        "shoal-test/hello:1",
        detach=True,
        name=f"shoal-bench-proxy-{uuid.uuid4().hex[:6]}",
        **replica_options(network, port),
    )
    rows = []
    try:
        with kafka_bus() as base, tempfile.TemporaryDirectory() as logs:
            bus = base.named(f"b{uuid.uuid4().hex[:8]}")
            await ensure_topics(bus)
            api_port = free_port()
            apis = [
                ServiceProcess(
                    bus,
                    module="api",
                    port_variable="SHOAL_API_HTTP_PORT",
                    log_dir=Path(logs),
                    name=f"api-{n}",
                    http_port=api_port,
                    SHOAL_API_TOKEN=TOKEN,
                    SHOAL_LOG_LEVEL="WARNING",
                    SHOAL_API_REUSE_PORT="1",
                )
                for n in range(instances)
            ]
            for process in apis:
                await process.start()
            api = apis[0]
            producer = EventProducer(bus, source="/shoal/bench/node")
            await producer.start()
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(
                        f"{api.url}/v1/functions",
                        json={"name": "hello", "image": "shoal-test/hello:1"},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as r:
                        assert r.status == 201, await r.text()
                    await producer.publish(
                        ReplicaReady(
                            function="hello",
                            revision=1,
                            replica_id="hello-bench",
                            node="bench",
                            endpoint=f"http://127.0.0.1:{port}",
                        )
                    )
                    for _ in range(200):
                        async with http.get(f"{api.url}/fn/hello/") as r:
                            if r.status == 200:
                                break
                        await asyncio.sleep(0.05)
                direct_url, proxied_url = f"http://127.0.0.1:{port}/", f"{api.url}/fn/hello/"
                pids = [p.process.pid for p in apis if p.process is not None]
                await asyncio.to_thread(wrk, direct_url, 4, 1, pids)
                await asyncio.to_thread(wrk, proxied_url, 4, 1, pids)
                for connections in levels:
                    for _ in range(PAIRS_AT_MOST if connections == levels[-1] else 1):
                        direct = await asyncio.to_thread(
                            wrk, direct_url, connections, seconds, pids
                        )
                        proxied = await asyncio.to_thread(
                            wrk, proxied_url, connections, seconds, pids
                        )
                        rows.append((connections, direct, proxied))
            finally:
                await producer.stop()
                for process in apis:
                    await process.stop()
    finally:
        container.remove(force=True)
    print(f"\nreplica network: {network}")
    print(
        f"{'conns':>5} {'direct p50':>10} {'api p50':>8} {'added':>7} {'direct p99':>10} "
        f"{'api p99':>8} {'direct rps':>10} {'api rps':>8} {'ratio':>6} {'non-2xx':>7}"
    )
    for connections, direct, proxied in rows:
        print(
            f"{connections:>5} {direct['p50']:>10.2f} {proxied['p50']:>8.2f} "
            f"{proxied['p50'] - direct['p50']:>7.2f} {direct['p99']:>10.2f} "
            f"{proxied['p99']:>8.2f} {direct['rps']:>10.0f} {proxied['rps']:>8.0f} "
            f"{proxied['rps'] / direct['rps']:>6.2f} {proxied['non_2xx']:>7.0f}"
        )
    print(
        f"latencies in ms; {instances} api instance(s) on one port (SO_REUSEPORT); wrk, "
        "the api and the replica share the machine's 2 cores; at the most connections, "
        f"{PAIRS_AT_MOST} pairs (the ratio reported is their median)"
    )
    print(
        f"\n{'conns':>5} {'direct cpu':>10} {'api path cpu':>12} {'of it api':>9} "
        f"{'rest':>6} {'ceiling':>7}"
    )
    for connections, direct, proxied in rows:
        rest = proxied["machine_us"] - proxied["api_us"]
        print(
            f"{connections:>5} {direct['machine_us']:>10.0f} {proxied['machine_us']:>12.0f} "
            f"{proxied['api_us']:>9.0f} {rest:>6.0f} {direct['machine_us'] / rest:>7.2f}"
        )
    print(
        "machine CPU time per request in us; rest: the path's CPU outside the api's own "
        "process (wrk, replica, kernel); ceiling: the ratio an api costing no CPU could reach"
    )
    low = rows[0]
    most = sorted((r for r in rows if r[0] == levels[-1]), key=lambda r: r[2]["rps"] / r[1]["rps"])
    high = most[len(most) // 2]
    by_level = {c: (d, p) for c, d, p in rows if c != high[0]} | {high[0]: (high[1], high[2])}
    return {
        "direct_ms_p50": round(low[1]["p50"], 3),
        "proxied_ms_p50": round(low[2]["p50"], 3),
        "added_ms_p50": round(low[2]["p50"] - low[1]["p50"], 3),
        "direct_ms_p99": round(low[1]["p99"], 3),
        "proxied_ms_p99": round(low[2]["p99"], 3),
        "added_ms_p99": round(low[2]["p99"] - low[1]["p99"], 3),
        "rps_ratio": round(high[2]["rps"] / high[1]["rps"], 3),
        "rps_ratio_ceiling": round(
            high[1]["machine_us"] / (high[2]["machine_us"] - high[2]["api_us"]), 3
        ),
        "rps_ratio_pairs": [round(p["rps"] / d["rps"], 3) for _, d, p in most],
        "api_us_per_request": high[2]["api_us"],
        **{
            f"p99_added_ms_{c}": round(p["p99"] - d["p99"], 3)
            for c, (d, p) in by_level.items()
            if c > 1
        },
        "api_instances": instances,
        "latency_at_connections": low[0],
        "rps_ratio_at_connections": high[0],
        "levels": {str(c): {"direct": d, "proxied": p} for c, (d, p) in by_level.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per level instead of 10 s")
    parser.add_argument(
        "--api-instances", type=int, default=1, help="api processes sharing the port (SO_REUSEPORT)"
    )
    args = parser.parse_args()
    seconds = 3 if args.quick else 10
    result = asyncio.run(measure([1, 8, 32], seconds, args.api_instances, "bridge"))
    host = asyncio.run(measure([1, 8, 32], seconds, args.api_instances, "host"))
    print(json.dumps(result | {f"host_{key}": value for key, value in host.items()}))


if __name__ == "__main__":
    main()
