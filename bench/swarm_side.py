"""The engine `bench.vs_swarm` runs both systems on, and the Swarm side of it: a dockerd of
the bench's own in a test host (a network namespace the bench makes, whose address is the
only one traffic goes to), `docker swarm init` on it and `docker swarm leave` afterwards;
a replicated Swarm service of the test image on the host network, each task on a port of
its slot, with the same limits, init and stop grace as Shoal's replicas."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.polling import answers, at_most, until
from services.local import lab_net
from services.local.engines import Engine
from services.local.lab import saved_test_images
from services.local.lab_net import LabPlan

IMAGE = "shoal-test/hello:1"
SERVICE_LABEL = "com.docker.swarm.service.name"
PORT_TEMPLATE = "2{{.Task.Slot}}00"
"""Every task on the host's network needs a port of its own: its slot's."""


def slot_port(slot: int) -> int:
    return int(PORT_TEMPLATE.replace("{{.Task.Slot}}", str(slot)))


@contextlib.contextmanager
def bench_engine(docker_client: Any, root: Path) -> Iterator[Engine]:
    """A one-host lab of the bench's own: its namespace on a switch of its own, its dockerd
    with the test image loaded and a one-manager swarm, all gone afterwards."""
    plan = LabPlan(
        1, 0, tag=f"vs{uuid.uuid4().hex[:4]}", subnet=f"10.232.{random.randrange(10, 250)}"
    )
    lab_net.check_can_build()
    lab_net.make_switch(plan)
    lab_net.make_node(plan, plan.host(1))
    host = plan.host(1)
    engine = Engine(root, host.name, host.address)
    try:
        engine.start()
        engine.load(saved_test_images(docker_client, only=(IMAGE,)))
        with contextlib.closing(engine.client()) as client:
            client.swarm.init(advertise_addr=host.address, listen_addr=f"{host.address}:2377")
        yield engine
    finally:
        with contextlib.suppress(Exception), contextlib.closing(engine.client()) as client:
            client.swarm.leave(force=True)
            for container in client.containers.list(all=True):
                container.remove(force=True)
        engine.stop()
        lab_net.kill_all(host.name)
        engine.unmount()
        lab_net.remove(host.name)
        lab_net.remove_switch(plan)


async def docker_cli(engine: Engine, *args: str) -> None:
    """One `docker` command on the engine, as a Swarm user types it; its error if it fails."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        "-H",
        engine.socket,
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {err.decode(errors='replace')[-400:]}")


class SwarmSide:
    """A Swarm service driven by the docker CLI and observed through the engine's API."""

    label = "Docker Swarm"

    def __init__(
        self,
        engine: Engine,
        http: aiohttp.ClientSession,
        limits: tuple[float, int],
        grace_s: float,
    ) -> None:
        self.engine, self.http = engine, http
        self.client = engine.client()
        (self.cpu, self.memory_mb), self.grace_s = limits, grace_s
        self.name = ""
        self.version = 0
        self._killed_port = 0

    async def deploy(self, name: str) -> None:
        self.name, self.version = name, 0
        await docker_cli(
            self.engine,
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--replicas",
            "1",
            "--network",
            "host",
            "--init",
            "--limit-cpu",
            str(self.cpu),
            "--limit-memory",
            f"{self.memory_mb}M",
            "--stop-grace-period",
            f"{self.grace_s:g}s",
            "--env",
            f"PORT={PORT_TEMPLATE}",
            "--env",
            f"HOST={self.engine.address}",
            "--env",
            "V=0",
            IMAGE,
        )

    async def scale(self, replicas: int) -> None:
        await docker_cli(self.engine, "service", "scale", "--detach", f"{self.name}={replicas}")

    async def update(self) -> None:
        self.version += 1
        await docker_cli(
            self.engine,
            "service",
            "update",
            "--detach",
            "--env-add",
            f"V={self.version}",
            self.name,
        )

    async def remove(self) -> None:
        await docker_cli(self.engine, "service", "rm", self.name)
        await until(lambda: at_most(self.running, 0), time.monotonic())

    def _tasks(self) -> list[dict[str, Any]]:
        found = self.client.api.tasks(filters={"service": self.name, "desired-state": "running"})
        return [t for t in found if t["Status"]["State"] == "running"]

    async def ready(self) -> int:
        """Tasks running the current version that answer on their slot's port (Swarm has
        no probe of its own here: "running" comes before the server listens)."""
        wanted = f"V={self.version}"
        tasks = await asyncio.to_thread(self._tasks)
        current = [t for t in tasks if wanted in t["Spec"]["ContainerSpec"].get("Env", [])]
        urls = [f"http://{self.engine.address}:{slot_port(t['Slot'])}/" for t in current]
        return sum(await asyncio.gather(*(answers(self.http, url) for url in urls)))

    def _containers(self) -> list[dict[str, Any]]:
        """The service's running containers, as `docker ps` lists them."""
        label = f"{SERVICE_LABEL}={self.name}"
        return list(self.client.api.containers(filters={"label": label}))

    async def running(self) -> int:
        return len(await asyncio.to_thread(self._containers))

    async def kill_one(self) -> None:
        (victim,) = await asyncio.to_thread(self._containers)
        found = await asyncio.to_thread(self.client.api.inspect_container, victim["Id"])
        env = dict(e.split("=", 1) for e in found["Config"]["Env"])
        self._killed_port = int(env["PORT"])
        await asyncio.to_thread(self.client.api.kill, victim["Id"])

    async def serves(self, http: aiohttp.ClientSession) -> bool:
        """Whether the killed task's slot answers again (its replacement has its port)."""
        return await answers(http, f"http://{self.engine.address}:{self._killed_port}/")

    def close(self) -> None:
        self.client.close()
