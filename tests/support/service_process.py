"""Shoal services as real processes, as they run in production."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import ClassVar

import aiohttp

from events.settings import BusSettings
from services.local.credentials import credentials_file, role_of
from tests.support.ports import free_port


def role_credentials(bus: BusSettings, module: str) -> dict[str, str]:
    """The variable naming the credentials of the service's role, kept beside the ones
    the bus settings came from (a broker's credentials folder)."""
    if bus.credentials_file is None:
        return {}
    own = credentials_file(Path(bus.credentials_file).parent, role_of(module))
    return {"SHOAL_KAFKA_CREDENTIALS_FILE": str(own)}


DASHBOARD_PORT = "SHOAL_API_DASHBOARD_PORT"


class ServiceProcess:
    """One service (`python -m services.<module>`) on a free HTTP port of 127.0.0.1."""

    def __init__(
        self,
        bus: BusSettings,
        *,
        module: str,
        port_variable: str,
        log_dir: Path,
        name: str,
        http_port: int | None = None,
        **settings: str,
    ) -> None:
        self.bus = bus
        self.module = module
        self.port_variable = port_variable
        self.settings = settings
        self.http_port = http_port or free_port()
        own_ports = {}
        if module == "api":  # the dashboard's origin: a port apart
            self.dashboard_port = int(settings.get(DASHBOARD_PORT) or free_port())
            own_ports[DASHBOARD_PORT] = str(self.dashboard_port)
        self.env = {
            **os.environ,
            **bus.env(),
            **role_credentials(bus, module),
            port_variable: str(self.http_port),
            **own_ports,
            **settings,
        }
        self.log_path = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dashboard_url(self) -> str:
        """The api's dashboard, an origin of its own."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    async def start(self, timeout_s: float = 60.0) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{self.module}",
                env=self.env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"{self.module} exited: {self.log_path.read_text()[-3000:]}"
                    )
                try:
                    async with http.get(f"http://127.0.0.1:{self.http_port}/readyz") as reply:
                        if reply.status == 200:
                            await self._check_identity(http)
                            return self
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(
            f"{self.module} not ready in {timeout_s} s: {self.log_path.read_text()[-3000:]}"
        )

    def successor(self, name: str, *, same_ports: bool = False, **changed: str) -> ServiceProcess:
        """Another process of the same service with the same settings (but those
        `changed`), on a new port (or this one's, `same_ports`, as a restart in place):
        what replaces this one when it is killed."""
        ports: dict[str, str] = {}
        if same_ports and self.module == "api":
            ports[DASHBOARD_PORT] = str(self.dashboard_port)
        return ServiceProcess(
            self.bus,
            module=self.module,
            port_variable=self.port_variable,
            log_dir=self.log_path.parent,
            name=name,
            http_port=self.http_port if same_ports else None,
            **(self.settings | ports | changed),
        )

    async def _check_identity(self, http: aiohttp.ClientSession) -> None:
        """The port answers as this service, not as another that holds it."""
        async with http.get(f"http://127.0.0.1:{self.http_port}/healthz") as reply:
            service = (await reply.json()).get("service")
        expected = "node" if self.module == "node_agent" else self.module
        if service != expected:
            raise AssertionError(
                f"port {self.http_port} answers as {service!r}, not {expected!r}: "
                f"{self.log_path.read_text()[-3000:]}"
            )

    async def kill(self) -> None:
        """SIGKILL: the agent gets no chance to clean up."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode


def worker_ranges() -> list[int]:
    """The first ports of the agents' port ranges this test worker may take: the workers
    of a parallel run (pytest-xdist) share them out, so two never race for one range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    return [p for n, p in enumerate(range(20000, 29900, 100)) if n % count == index % count]


class AgentProcess(ServiceProcess):
    """A node-agent with a port range of its own."""

    ranges_used: ClassVar[set[int]] = set()

    def __init__(
        self, bus: BusSettings, *, log_dir: Path, node_id: str | None = None, **settings: str
    ) -> None:
        self.node_id = node_id or f"node-{uuid.uuid4().hex[:8]}"
        # Below Linux's ephemeral range (32768-60999), where brokers and test servers
        # get their free ports, and apart from `shoal up`'s default 30000-32767; never the
        # range of another agent of this test run (two agents on one range race for ports).
        free = sorted(set(worker_ranges()) - AgentProcess.ranges_used)
        if not free:
            AgentProcess.ranges_used.clear()
            free = worker_ranges()
        first = random.choice(free)
        AgentProcess.ranges_used.add(first)
        defaults = {
            "SHOAL_NODE_ID": self.node_id,
            "SHOAL_NODE_PORT_FIRST": str(first),
            "SHOAL_NODE_PORT_LAST": str(first + 99),
            "SHOAL_NODE_STATS_S": "1",
            "SHOAL_NODE_STOP_TIMEOUT_S": "2",
        }
        super().__init__(
            bus,
            module="node_agent",
            port_variable="SHOAL_NODE_HTTP_PORT",
            log_dir=log_dir,
            name=self.node_id,
            **{**defaults, **settings},
        )
