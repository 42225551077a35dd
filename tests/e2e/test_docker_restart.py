"""A node's container engine restarts under a running function: the node-agent says its
engine went away and came back, reports the lost replica as the platform's failure, and
the function serves again with no manual step. The engine restarted is a second dockerd
of the test's own (own socket, data and exec roots, and its own network namespace, a
test host the test makes), so the rest of the suite is not disturbed."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import docker
import pytest

from events.settings import BusSettings
from events.topics import NODE_STATUS, REPLICAS
from events.types import NodeRuntimeChanged, ReplicaFailed, ReplicaReady
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.platform import AUTH, Platform, running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.docker]


@dataclass
class Engine:
    """A dockerd of the test's own, in a network namespace of the test's own (a test host
    at ADDRESS, reached through a veth pair): it never touches the main engine's bridge."""

    root: Path
    name: str
    address: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.socket, version="auto")

    def create_host(self, subnet: int) -> None:
        outside, inside = f"{self.name}o", f"{self.name}i"
        for command in (
            f"ip netns add {self.name}",
            f"ip link add {outside} type veth peer name {inside}",
            f"ip link set {inside} netns {self.name}",
            f"ip addr add 10.231.{subnet}.1/24 dev {outside}",
            f"ip link set {outside} up",
            f"ip -n {self.name} addr add {self.address}/24 dev {inside}",
            f"ip -n {self.name} link set {inside} up",
            f"ip -n {self.name} link set lo up",
        ):
            done = subprocess.run(command.split(), capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"cannot make a test host ({command}): {done.stderr}; needs root")

    def remove_host(self) -> None:
        """The namespace, and what the engine left mounted under its roots."""
        mounts = Path("/proc/mounts").read_text().split("\n")
        for line in mounts:
            fields = line.split()
            if len(fields) > 1 and fields[1].startswith(str(self.root)):
                subprocess.run(["umount", "-l", fields[1]], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def start(self, timeout_s: float = 30) -> None:
        with (self.root / "dockerd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/var/run/netns/{self.name}",
                    "dockerd",
                    "--data-root",
                    str(self.root / "data"),
                    "--exec-root",
                    str(self.root / "exec"),
                    "--pidfile",
                    str(self.root / "dockerd.pid"),
                    "-H",
                    self.socket,
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["docker", "-H", self.socket, "info"], capture_output=True, timeout=30
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        log_text = (self.root / "dockerd.log").read_text()[-2000:]
        pytest.fail(f"a second dockerd did not start: {log_text}")

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM, and wait until it is gone (its containerd with it)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Engine]:
    subnet = random.randrange(10, 250)
    found = Engine(
        root=tmp_path_factory.mktemp("dockerd", numbered=True),
        name=f"sh{uuid.uuid4().hex[:6]}",
        address=f"10.231.{subnet}.2",
    )
    found.create_host(subnet)
    try:
        found.start()
        ensure_test_images(docker_client)
        with contextlib.closing(found.client()) as second:
            hello = docker_client.images.get("shoal-test/hello:1")
            second.images.load(b"".join(hello.save(named=True)))
        yield found
        with contextlib.suppress(Exception), contextlib.closing(found.client()) as second:
            for container in second.containers.list(all=True):
                container.remove(force=True)
        found.stop()
    finally:
        found.remove_host()


@pytest.fixture
async def platform(
    bus: BusSettings, tmp_path: Path, docker_client: Any, engine: Engine
) -> AsyncIterator[Platform]:
    async with running_platform(
        bus,
        tmp_path,
        docker_client,
        DOCKER_HOST=engine.socket,
        SHOAL_NODE_ADDRESS=engine.address,
        # The engine has no bridge (--bridge=none): its test host is the replicas' box.
        SHOAL_NODE_NETWORK="host",
    ) as parts:
        yield parts


async def answers(url: str, timeout_s: float) -> int:
    """How long until the url answers 200 (seconds), failing past the timeout."""
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as reply:
                    if reply.status == 200:
                        return round(time.monotonic() - started)
            assert time.monotonic() - started < timeout_s, f"{url} did not answer again"
            await asyncio.sleep(0.2)


async def test_a_restarted_container_engine_is_ridden_out_without_manual_steps(
    platform: Platform, bus: BusSettings, engine: Engine
) -> None:
    api = platform.api.url
    spec = {"name": "hello", "image": "shoal-test/hello:1", "min_replicas": 1, "cpu": 0.1}
    async with EventLog(bus, [REPLICAS, NODE_STATUS]) as log:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply,
        ):
            assert reply.status == 201, await reply.text()
        (first,) = await log.wait_for(ReplicaReady, timeout_s=30)
        await answers(f"{api}/fn/hello/", 10)
        await asyncio.to_thread(engine.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(engine.start)
        await log.wait_for(ReplicaReady, lambda r: r.replica_id != first.replica_id, timeout_s=60)
        await answers(f"{api}/fn/hello/", 30)
        failed = log.of(ReplicaFailed, lambda f: f.replica_id == first.replica_id)
        assert all(f.cause == "platform" for f in failed), "the engine's fault, not the function's"
        said = [c.available for c in log.of(NodeRuntimeChanged)]
    assert said == [False, True], "the agent said its engine went away and came back"
