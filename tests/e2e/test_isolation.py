"""A function cannot reach the platform: from inside a running replica of the default
(isolated) mode, Kafka's ports and every service's port are closed; replicas sit on a
bridge with inter-container traffic off; and every Shoal listener on the host is bound to
127.0.0.1 (read with `ss`, never by addressing a bridge)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import aiohttp

from services.common.labels import LABEL_FUNCTION
from services.local.kafka_broker import LocalKafkaBroker
from services.node_agent.sandbox import NETWORK_OPTIONS, REPLICA_NETWORK
from tests.support.platform import Platform, call, eventually, status_of

SPEC = {"name": "boxed", "image": "shoal-test/hello:1", "cpu": 0.1, "memory_mb": 32}


def listeners() -> dict[int, set[str]]:
    """Listening TCP addresses by process id, as `ss` sees them on the host (an IPv4
    address Java binds as IPv6-mapped is given as IPv4)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found: dict[int, set[str]] = {}
    for line in out.splitlines():
        local = line.split()[3]
        for pid in re.findall(r"pid=(\d+)", line):
            address = local.rsplit(":", 1)[0].removeprefix("[::ffff:").removesuffix("]")
            found.setdefault(int(pid), set()).add(address)
    return found


async def test_a_replica_reaches_no_shoal_port_and_shoal_listens_on_loopback(
    platform: Platform, kafka_broker: LocalKafkaBroker, docker_client: Any
) -> None:
    await call("POST", f"{platform.api.url}/v1/functions", SPEC, expect=201)
    await eventually(lambda: status_of(platform, "boxed"), lambda s: s["ready"] == 1)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.api.url}/fn/boxed/") as reply:
            assert reply.status == 200
    (container,) = docker_client.containers.list(filters={"label": f"{LABEL_FUNCTION}=boxed"})
    services = [platform.api, platform.scheduler, platform.autoscaler, platform.healer]
    ports = [kafka_broker.layout.port, kafka_broker.layout.controller_port]
    ports += [part.http_port for part in [*services, *platform.agents]]
    for port in ports:
        code, out = container.exec_run(["/bin/sh", "-c", f"nc -w 1 127.0.0.1 {port} </dev/null"])
        assert code != 0, f"port {port} answered from inside the replica: {out!r}"
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == REPLICA_NETWORK
    network = docker_client.networks.get(REPLICA_NETWORK)
    assert network.attrs["Options"] == NETWORK_OPTIONS
    bound = listeners()
    pids = [kafka_broker.pid()] + [p.process.pid for p in [*services, *platform.agents]]
    for pid in pids:
        assert pid is not None and bound.get(pid), f"process {pid} listens on nothing"
        assert bound[pid] == {"127.0.0.1"}, (pid, bound[pid])
