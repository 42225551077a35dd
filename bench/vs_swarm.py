"""Shoal side by side with Docker Swarm on the same Docker Engine (a dockerd of the bench's
own, in a test host it makes; `docker swarm init` on it, left afterwards), with the same
image (shoal-test/hello:1), limits (0.01 CPU, 32 MB), init and stop grace (10 s), both on
the host's network, both polled every 0.2 s:

- scale 1 -> 50: from the command until 50 are ready (Shoal: its readiness probe passed;
  Swarm: the task running and answering on its port, as Swarm has no probe here);
- scale 50 -> 1: from the command until one container is left running;
- crash: the last replica's container `docker kill`ed, until a request is answered again
  (Shoal: through its api; Swarm: the task's port, which its replacement takes);
- rolling update of 10: from the command (Shoal: a new revision; Swarm: `service update`
  with its defaults, one task at a time, stop-first) until all 10 run the new version and
  no old one runs.

Shoal starts a replica whose CPU limit is below 0.5 with 0.5 CPU until it is ready (its
startup boost; Swarm has none); `--startup-cpu 0` starts it at its limit, as Swarm does.
Medians of 3 trials (`--quick`: 1 trial, 20 replicas and an update of 5, to end within two
minutes). The ratios are Swarm's time divided by Shoal's: above 1, Shoal is faster."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import docker

from bench.broker import bench_platform
from bench.polling import answers, at_least, at_most, until
from bench.swarm_side import IMAGE, SwarmSide, bench_engine
from services.common.labels import LABEL_FUNCTION
from services.local.engines import Engine
from tests.support.platform import AUTH

CPU, MEMORY_MB, GRACE_S = 0.01, 32, 10.0
ROWS = ("scale_up", "scale_down", "crash", "update")


class Side(Protocol):
    label: str

    async def deploy(self, name: str) -> None: ...
    async def scale(self, replicas: int) -> None: ...
    async def update(self) -> None: ...
    async def remove(self) -> None: ...
    async def ready(self) -> int: ...
    async def running(self) -> int: ...
    async def kill_one(self) -> None: ...
    async def serves(self, http: aiohttp.ClientSession) -> bool: ...


class ShoalSide:
    """A Shoal function driven through the api, its containers seen in the engine."""

    label = "Shoal"

    def __init__(self, api: str, engine: Engine, http: aiohttp.ClientSession) -> None:
        self.api, self.http = api, http
        self.client = engine.client()
        self.spec: dict[str, Any] = {}
        self.revision = 0
        self.replicas = 1

    async def _send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.request(method, f"{self.api}{path}", json=body) as reply:
            found: dict[str, Any] = await reply.json()
            if reply.status >= 300:
                raise RuntimeError(f"{method} {path}: {reply.status} {found}")
            return found

    async def deploy(self, name: str) -> None:
        self.spec = {
            "name": name,
            "image": IMAGE,
            "cpu": CPU,
            "memory_mb": MEMORY_MB,
            "stop_grace_s": GRACE_S,
            "min_replicas": 1,
            "max_replicas": 60,
            "env": {"V": "0"},
        }
        self.revision = (await self._send("POST", "/v1/functions", self.spec))["revision"]

    async def scale(self, replicas: int) -> None:
        self.replicas = replicas
        await self._send("POST", f"/v1/functions/{self.spec['name']}/scale", {"replicas": replicas})

    async def update(self) -> None:
        """A new revision (its env changed) at the count in force."""
        version = int(self.spec["env"]["V"]) + 1
        self.spec = {**self.spec, "env": {"V": str(version)}, "min_replicas": self.replicas}
        found = await self._send("PUT", f"/v1/functions/{self.spec['name']}", self.spec)
        self.revision = found["revision"]

    async def remove(self) -> None:
        await self._send("DELETE", f"/v1/functions/{self.spec['name']}", {})
        await until(lambda: at_most(self.running, 0), time.monotonic())

    async def ready(self) -> int:
        """Replicas of the current revision that passed their readiness probe."""
        async with self.http.get(f"{self.api}/v1/functions/{self.spec['name']}") as reply:
            replicas = (await reply.json())["replicas"]
        return sum(1 for r in replicas if r["revision"] == self.revision and r["state"] == "ready")

    def _containers(self) -> list[dict[str, Any]]:
        """Its running containers, as `docker ps` lists them (no inspection of each)."""
        label = f"{LABEL_FUNCTION}={self.spec['name']}"
        return list(self.client.api.containers(filters={"label": label}))

    async def running(self) -> int:
        return len(await asyncio.to_thread(self._containers))

    async def kill_one(self) -> None:
        (victim,) = await asyncio.to_thread(self._containers)
        await asyncio.to_thread(self.client.api.kill, victim["Id"])

    async def serves(self, http: aiohttp.ClientSession) -> bool:
        return await answers(http, f"{self.api}/fn/{self.spec['name']}/")

    def close(self) -> None:
        self.client.close()


async def trial(
    side: Side, many: int, updated: int, http: aiohttp.ClientSession
) -> dict[str, float]:
    """One run of the four rows on `side`, each timed from its command (or kill) on."""
    await side.deploy(f"vs-{uuid.uuid4().hex[:6]}")
    await until(lambda: at_least(side.ready, 1), time.monotonic())
    found: dict[str, float] = {}
    began = time.monotonic()
    await side.scale(many)
    found["scale_up"] = await until(lambda: at_least(side.ready, many), began)
    began = time.monotonic()
    await side.scale(1)
    found["scale_down"] = await until(lambda: at_most(side.running, 1), began)
    await until(lambda: at_least(side.ready, 1), time.monotonic())
    began = time.monotonic()
    await side.kill_one()
    found["crash"] = await until(lambda: side.serves(http), began)
    await side.scale(updated)
    await until(lambda: at_least(side.ready, updated), time.monotonic())
    began = time.monotonic()
    await side.update()
    found["update"] = await until(lambda: all_new(side, updated), began, timeout_s=600)
    await side.remove()
    return found


async def all_new(side: Side, n: int) -> bool:
    """All `n` replicas run the new version, and no other runs."""
    return await side.ready() >= n and await side.running() == n


async def run(trials: int, many: int, updated: int, startup_cpu: float) -> dict[str, Any]:
    times: dict[str, dict[str, list[float]]] = {"swarm": {}, "shoal": {}}
    docker_client = docker.from_env()
    with (
        tempfile.TemporaryDirectory(prefix="shoal-vs-swarm-") as root,
        bench_engine(docker_client, Path(root) / "engine") as engine,
    ):
        options = {
            "DOCKER_HOST": engine.socket,
            "SHOAL_NODE_ADDRESS": engine.address,
            "SHOAL_NODE_NETWORK": "host",
            "SHOAL_NODE_MAX_REPLICAS": "200",
            "SHOAL_NODE_STARTUP_CPU": str(startup_cpu),
        }
        async with (
            bench_platform("vs", **options) as (platform, _),
            aiohttp.ClientSession(headers=AUTH) as http,
        ):
            sides: dict[str, Any] = {
                "swarm": SwarmSide(engine, http, (CPU, MEMORY_MB), GRACE_S),
                "shoal": ShoalSide(platform.api.url, engine, http),
            }
            for n in range(trials):
                for key, side in sides.items():
                    found = await trial(side, many, updated, http)
                    print(f"trial {n + 1} {side.label}: {json.dumps(found)}", flush=True)
                    for row, seconds in found.items():
                        times[key].setdefault(row, []).append(seconds)
            for side in sides.values():
                side.close()
    return {**figures(times, trials, many, updated), "startup_cpu": startup_cpu}


def figures(
    times: dict[str, dict[str, list[float]]], trials: int, many: int, updated: int
) -> dict[str, Any]:
    medians = {
        k: {row: statistics.median(v) for row, v in rows.items()} for k, rows in times.items()
    }
    found: dict[str, Any] = {"trials": trials, "replicas": many, "update_of": updated}
    for row in ROWS:
        found[f"swarm_{row}_s"] = round(medians["swarm"][row], 2)
        found[f"shoal_{row}_s"] = round(medians["shoal"][row], 2)
        found[f"{row}_ratio"] = round(medians["swarm"][row] / medians["shoal"][row], 2)
    return found


def report(found: dict[str, Any]) -> None:
    many, updated = found["replicas"], found["update_of"]
    names = {
        "scale_up": f"scale 1 -> {many}, all ready (s)",
        "scale_down": f"scale {many} -> 1, one left (s)",
        "crash": "crash -> replacement serving (s)",
        "update": f"rolling update of {updated} (s)",
    }
    print(
        f"medians of {found['trials']} trial(s); Shoal's startup boost {found['startup_cpu']:g} CPU"
    )
    print(f"{'':<36}{'Swarm':>10}{'Shoal':>10}{'Swarm/Shoal':>13}")
    for row in ROWS:
        swarm, shoal = found[f"swarm_{row}_s"], found[f"shoal_{row}_s"]
        print(f"{names[row]:<36}{swarm:>10}{shoal:>10}{found[f'{row}_ratio']:>13}")
    print(json.dumps(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 trial, 20 replicas, update of 5")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--startup-cpu",
        type=float,
        default=0.5,
        help="Shoal's startup boost (SHOAL_NODE_STARTUP_CPU); 0 starts at the limit, as Swarm",
    )
    args = parser.parse_args()
    trials, many, updated = (1, 20, 5) if args.quick else (args.trials, 50, 10)
    report(asyncio.run(run(trials, many, updated, args.startup_cpu)))


if __name__ == "__main__":
    main()
