"""A replica's container is boxed in, checked from inside real containers of the real
engine: not root, no capabilities, no new privileges, no packet sockets, a read-only root,
a pids limit that stops a fork bomb, capped logs; and an image that is not on the node
fails at once, with no pull and no container left behind."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.common.labels import LABEL_NODE, LABEL_REPLICA
from services.node_agent.docker_runtime import DockerRuntime, container_name
from services.node_agent.runtime import RuntimeStartError
from services.node_agent.sandbox import (
    REPLICA_NETWORK,
    ImageFacts,
    Sandbox,
    container_options,
    run_as,
)
from tests.node_agent.conftest import remove_node_containers, start_command
from tests.support.ports import free_port

PIDS = 32


@pytest.fixture
async def runtime(docker_client: Any, images: dict[str, str]) -> AsyncIterator[DockerRuntime]:
    node = f"sandbox-{uuid.uuid4().hex[:6]}"
    found = DockerRuntime(
        node_id=node, address="127.0.0.1", network="host", sandbox=Sandbox(pids_limit=PIDS)
    )
    yield found
    await found.close()
    remove_node_containers(docker_client, node)


async def started(runtime: DockerRuntime, docker_client: Any, image: str, **spec: Any) -> Any:
    replica = f"r-{uuid.uuid4().hex[:6]}"
    command = start_command(runtime.node_id, image, replica, **spec)
    await runtime.start(command, port=free_port())
    return docker_client.containers.get(container_name(replica))


def inside(container: Any, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["/bin/sh", "-c", script])
    return code, out.decode(errors="replace")


def status_field(container: Any, name: str, pid: str = "1") -> str:
    code, out = inside(container, f"cat /proc/{pid}/status")
    assert code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith(f"{name}:")]
    return line.split(":", 1)[1].strip()


async def test_a_replica_runs_unprivileged_and_read_only(
    runtime: DockerRuntime, docker_client: Any, images: dict[str, str]
) -> None:
    container = await started(runtime, docker_client, images["hello"])
    assert status_field(container, "Uid").split()[0] == "65534"
    assert inside(container, "id -u") == (0, "65534\n")
    assert int(status_field(container, "CapEff"), 16) == 0
    assert int(status_field(container, "CapBnd"), 16) == 0
    assert status_field(container, "NoNewPrivs") == "1"
    assert status_field(container, "Seccomp") == "2"
    code, out = inside(container, "echo x > /probe")
    assert code != 0 and "Read-only file system" in out
    assert inside(container, "echo x > /tmp/probe && cat /tmp/probe") == (0, "x\n")
    code, out = inside(container, "arping -c 1 -w 1 -I lo 127.0.0.1")
    assert code != 0 and "not permitted" in out, out
    host = container.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["PidsLimit"] == PIDS
    assert host["MemorySwap"] == host["Memory"] > 0
    assert host["LogConfig"]["Config"] == {"max-size": str(1 << 20), "max-file": "2"}
    assert not host["Privileged"] and not host["Binds"] and not host["Devices"]


async def test_a_fork_bomb_stops_at_the_pids_limit(
    runtime: DockerRuntime, docker_client: Any, images: dict[str, str]
) -> None:
    container = await started(runtime, docker_client, images["hello"])
    _, out = inside(
        container, "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo spawned"
    )
    assert "can't fork" in out or "Resource temporarily unavailable" in out, out[-400:]
    assert len(container.top()["Processes"]) <= PIDS
    assert docker_client.ping(), "the engine answers while the replica is full"


async def test_a_function_may_keep_a_writable_root_and_an_image_user_is_kept(
    runtime: DockerRuntime, docker_client: Any, images: dict[str, str]
) -> None:
    container = await started(runtime, docker_client, images["hello"], read_only_root=False)
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is False
    code, out = inside(container, "echo x > /probe")
    assert code != 0 and "Permission denied" in out, out  # writable, but not by nobody
    for rootish in ("", "root", "0", "0:0", "00", "+0", "app", "0:1000"):
        assert run_as(rootish) == "65534:65534", rootish
    assert run_as("1000:1001") == "1000:1001"
    assert run_as("1000") == run_as("1000:0") == run_as("1000:wheel") == "1000:1000"


def test_volumes_an_image_declares_become_tmpfs_mounts_never_host_disk() -> None:
    command = start_command("n", "shoal-test/hello:1", "r-1")
    image = ImageFacts(id="sha256:abc", user="0", volumes=("/data", "/var/cache"))
    options = container_options(
        command,
        port=30000,
        node_id="n",
        address="127.0.0.1",
        network="bridge",
        image=image,
        sandbox=Sandbox(),
    )
    assert set(options["tmpfs"]) == {"/tmp", "/data", "/var/cache"}
    assert options["image"] == "sha256:abc" and options["user"] == "65534:65534"
    assert options["network"] == REPLICA_NETWORK and "network_mode" not in options
    assert options["ports"] == {"8080/tcp": ("127.0.0.1", 30000)}


async def test_an_image_not_on_the_node_fails_at_once_with_no_pull_and_no_container(
    runtime: DockerRuntime, docker_client: Any
) -> None:
    replica = f"r-{uuid.uuid4().hex[:6]}"
    command = start_command(runtime.node_id, "shoal-test/absent:1", replica)
    began = time.monotonic()
    with pytest.raises(RuntimeStartError, match="image not found"):
        await runtime.start(command, port=free_port())
    assert time.monotonic() - began < 5
    with contextlib.suppress(Exception):
        docker_client.containers.get(container_name(replica))
        raise AssertionError("a container was left behind")
    assert not docker_client.images.list(name="shoal-test/absent")


async def test_a_leftover_of_a_failed_start_is_made_again_boxed_in(
    runtime: DockerRuntime, docker_client: Any, images: dict[str, str]
) -> None:
    replica = f"r-{uuid.uuid4().hex[:6]}"
    docker_client.containers.create(
        images["hello"], name=container_name(replica), labels={LABEL_NODE: runtime.node_id}
    )
    await runtime.start(start_command(runtime.node_id, images["hello"], replica), port=free_port())
    container = docker_client.containers.get(container_name(replica))
    assert container.status == "running"
    assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]


async def test_a_replica_network_that_lets_replicas_talk_is_refused(
    docker_client: Any, images: dict[str, str]
) -> None:
    name = f"shoal-open-{uuid.uuid4().hex[:6]}"
    network = docker_client.networks.create(name, driver="bridge")
    runtime = DockerRuntime(
        node_id=f"n-{uuid.uuid4().hex[:6]}",
        address="127.0.0.1",
        network="bridge",
        sandbox=Sandbox(network_name=name),
    )
    try:
        command = start_command(runtime.node_id, images["hello"], f"r-{uuid.uuid4().hex[:6]}")
        with pytest.raises(RuntimeStartError, match="lets replicas reach one another"):
            await runtime.start(command, port=free_port())
    finally:
        await runtime.close()
        network.remove()


async def test_a_replica_starts_with_the_startup_boost_and_is_settled_to_its_limit(
    runtime: DockerRuntime, docker_client: Any, images: dict[str, str]
) -> None:
    container = await started(runtime, docker_client, images["hello"], cpu=0.01)
    host = container.attrs["HostConfig"]
    assert (host["CpuPeriod"], host["CpuQuota"]) == (100_000, 50_000), "0.5 CPU until ready"
    replica = container.labels[LABEL_REPLICA]
    await runtime.settle(replica, cpu=0.01)
    container.reload()
    assert container.attrs["HostConfig"]["CpuQuota"] == 1_000
    roomy = await started(runtime, docker_client, images["hello"], cpu=2)
    assert roomy.attrs["HostConfig"]["CpuQuota"] == 200_000, "a limit above the boost is kept"
    await runtime.settle(roomy.labels[LABEL_REPLICA], cpu=2)
    roomy.reload()
    assert roomy.attrs["HostConfig"]["CpuQuota"] == 200_000
