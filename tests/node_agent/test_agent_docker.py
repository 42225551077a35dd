"""The node-agent with real containers: commands in over Kafka, the truth out."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.bus import EventProducer
from events.settings import BusSettings
from events.types import (
    ContainerStats,
    DrainReplica,
    NodeHeartbeat,
    NodeJoined,
    ReplicaDraining,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
)
from services.common.labels import (
    LABEL_FUNCTION,
    LABEL_NODE,
    LABEL_PORT,
    LABEL_REPLICA,
    LABEL_REVISION,
)
from services.node_agent.docker_runtime import container_name
from services.node_agent.sandbox import REPLICA_NETWORK
from tests.node_agent.conftest import remove_node_containers, start_command
from tests.support.event_log import EventLog
from tests.support.service_process import AgentProcess

pytestmark = [pytest.mark.kafka, pytest.mark.docker]


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition still false after {timeout_s} s")


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        assert reply.status == 200
        return await reply.text()


async def test_a_replica_starts_answers_http_drains_and_stops(
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
    docker_client: Any,
) -> None:
    command = start_command(
        agent.node_id, images["hello"], "hello-1-a", cpu=0.25, memory_mb=48, env={"GREETING": "hi"}
    )
    sent = await commands.publish(command)
    (ready,) = await events.wait_for(ReplicaReady, lambda e: e.replica_id == "hello-1-a")
    assert ready.node == agent.node_id
    assert ready.endpoint.startswith("http://127.0.0.1:")
    assert await get_text(ready.endpoint + "/") == "hello from shoal\n"
    assert events.of(ReplicaStarting, lambda e: e.replica_id == "hello-1-a")
    ready_envelope = next(e for e in events.events if isinstance(e.data, ReplicaReady))
    assert ready_envelope.causationid == sent.id
    assert ready_envelope.source.startswith("/shoal/node/")

    attrs = docker_client.api.inspect_container(container_name("hello-1-a"))
    host = attrs["HostConfig"]
    assert (host["CpuPeriod"], host["CpuQuota"]) == (100_000, 25_000), "its own limit once ready"
    assert host["Memory"] == 48 * 2**20
    assert host["MemorySwap"] == 48 * 2**20
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["NetworkMode"] == REPLICA_NETWORK
    labels = attrs["Config"]["Labels"]
    port = ready.endpoint.rsplit(":", 1)[1]
    assert host["PortBindings"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": port}]
    assert labels[LABEL_FUNCTION] == "hello"
    assert labels[LABEL_REVISION] == "1"
    assert labels[LABEL_REPLICA] == "hello-1-a"
    assert labels[LABEL_NODE] == agent.node_id
    assert labels[LABEL_PORT] == port
    assert "PORT=8080" in attrs["Config"]["Env"]
    assert "GREETING=hi" in attrs["Config"]["Env"]

    await commands.publish(
        DrainReplica(node=agent.node_id, function="hello", replica_id="hello-1-a", drain_s=0.5)
    )
    await events.wait_for(ReplicaDraining, lambda e: e.replica_id == "hello-1-a")
    (stopped,) = await events.wait_for(ReplicaStopped, lambda e: e.replica_id == "hello-1-a")
    assert stopped.reason == "drained"
    assert (
        docker_client.containers.list(
            all=True, filters={"name": f"^/{container_name('hello-1-a')}$"}
        )
        == []
    )


async def test_the_agent_joins_heartbeats_and_reports_container_usage(
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
) -> None:
    (joined,) = await events.wait_for(NodeJoined, lambda e: e.node == agent.node_id)
    assert joined.runtime == "docker"
    await commands.publish(
        start_command(agent.node_id, images["cpu"], "cpu-1-a", cpu=0.5, memory_mb=32)
    )
    (ready,) = await events.wait_for(ReplicaReady, lambda e: e.replica_id == "cpu-1-a")
    stop = asyncio.Event()

    async def burn() -> None:
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                async with http.get(ready.endpoint + "/cgi-bin/burn") as reply:
                    await reply.read()

    load = [asyncio.create_task(burn()) for _ in range(3)]
    try:
        busy = await events.wait_for(
            ContainerStats,
            lambda e: e.replica_id == "cpu-1-a" and e.cpu_fraction > 0.3,
            timeout_s=20,
        )
    finally:
        stop.set()
        await asyncio.gather(*load)
    assert busy[0].memory_limit_bytes == 32 * 2**20
    assert busy[0].cpu_fraction <= 1.2, "CPU is a fraction of the 0.5-core limit"
    beats = await events.wait_for(
        NodeHeartbeat, lambda e: e.node == agent.node_id and e.replicas == 1, timeout_s=10
    )
    assert beats[0].used_cpus == pytest.approx(0.05), "requested: the default, below its limit"
    assert beats[0].used_memory_mb == 32
    measured = await events.wait_for(
        NodeHeartbeat,
        lambda e: e.node == agent.node_id and e.replicas == 1 and e.memory_mb_used > 0,
        timeout_s=15,
    )
    assert 0 < measured[0].memory_mb_used <= 32


async def test_a_repeated_start_command_runs_one_container(
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
    docker_client: Any,
) -> None:
    command = start_command(agent.node_id, images["hello"], "hello-1-dup")
    await commands.publish(command)
    await commands.publish(command)
    await events.wait_for(ReplicaReady, lambda e: e.replica_id == "hello-1-dup")
    await asyncio.sleep(1.5)
    assert len(events.of(ReplicaReady, lambda e: e.replica_id == "hello-1-dup")) == 1
    assert len(events.of(ReplicaStarting, lambda e: e.replica_id == "hello-1-dup")) == 1
    owned = docker_client.containers.list(filters={"label": f"{LABEL_NODE}={agent.node_id}"})
    assert len(owned) == 1


async def test_a_replica_that_crashes_on_start_fails_with_its_exit_code_and_logs(
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
) -> None:
    await commands.publish(start_command(agent.node_id, images["crash"], "crash-1-a"))
    (failed,) = await events.wait_for(ReplicaFailed, lambda e: e.replica_id == "crash-1-a")
    assert failed.exit_code == 3
    assert failed.reason == "container exited with code 3"
    assert not failed.oom_killed
    assert any("config file /etc/app.conf missing" in line for line in failed.last_logs)
    assert not events.of(ReplicaReady, lambda e: e.replica_id == "crash-1-a")


async def test_a_replica_never_ready_fails_at_its_deadline_and_is_removed(
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
    docker_client: Any,
) -> None:
    await commands.publish(
        start_command(agent.node_id, images["never-ready"], "slow-1-a", ready_timeout_s=2)
    )
    (failed,) = await events.wait_for(ReplicaFailed, lambda e: e.replica_id == "slow-1-a")
    assert failed.reason.startswith("not ready within 2 s")
    await asyncio.sleep(0.5)
    assert (
        docker_client.containers.list(
            all=True, filters={"name": f"^/{container_name('slow-1-a')}$"}
        )
        == []
    )


async def test_a_replica_over_its_memory_limit_fails_as_oom_killed(
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
) -> None:
    await commands.publish(start_command(agent.node_id, images["memhog"], "mem-1-a", memory_mb=32))
    (failed,) = await events.wait_for(ReplicaFailed, lambda e: e.replica_id == "mem-1-a")
    assert failed.oom_killed
    assert failed.exit_code == 137
    assert "OOM" in failed.reason


async def test_a_container_killed_behind_the_agents_back_fails(
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
    docker_client: Any,
) -> None:
    await commands.publish(start_command(agent.node_id, images["hello"], "hello-1-k"))
    await events.wait_for(ReplicaReady, lambda e: e.replica_id == "hello-1-k")
    docker_client.containers.get(container_name("hello-1-k")).kill()
    (failed,) = await events.wait_for(ReplicaFailed, lambda e: e.replica_id == "hello-1-k")
    assert failed.exit_code == 137
    assert not failed.oom_killed


async def test_an_agent_killed_and_restarted_adopts_its_containers_and_removes_orphans(
    bus: BusSettings,
    tmp_path: Path,
    agent: AgentProcess,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
    docker_client: Any,
    agent_factory: list[AgentProcess],
) -> None:
    await commands.publish(start_command(agent.node_id, images["hello"], "hello-1-keep"))
    (first,) = await events.wait_for(ReplicaReady, lambda e: e.replica_id == "hello-1-keep")
    await agent.kill()
    orphan = docker_client.containers.run(
        images["never-ready"],
        name=container_name("ghost-1-x"),
        detach=True,
        labels={
            LABEL_FUNCTION: "ghost",
            LABEL_REVISION: "1",
            LABEL_REPLICA: "ghost-1-x",
            LABEL_NODE: agent.node_id,
            LABEL_PORT: "1",
        },
    )
    successor = AgentProcess(
        bus,
        log_dir=tmp_path,
        node_id=agent.node_id,
        SHOAL_NODE_PORT_FIRST=agent.env["SHOAL_NODE_PORT_FIRST"],
        SHOAL_NODE_PORT_LAST=agent.env["SHOAL_NODE_PORT_LAST"],
    )
    agent_factory.append(successor)
    await successor.start()
    ready_again = await events.wait_for(
        ReplicaReady, lambda e: e.replica_id == "hello-1-keep", count=2
    )
    assert ready_again[1].endpoint == first.endpoint
    assert await get_text(first.endpoint + "/") == "hello from shoal\n"
    (gone,) = await events.wait_for(ReplicaStopped, lambda e: e.replica_id == "ghost-1-x")
    assert gone.reason.startswith("orphan removed")
    assert docker_client.containers.list(all=True, filters={"id": orphan.id}) == []
    await commands.publish(start_command(agent.node_id, images["hello"], "hello-1-new"))
    (new,) = await events.wait_for(ReplicaReady, lambda e: e.replica_id == "hello-1-new")
    assert new.endpoint != first.endpoint, "the adopted replica's port stays reserved"
    remove_node_containers(docker_client, agent.node_id)


async def test_a_port_held_by_another_process_is_skipped(
    bus: BusSettings,
    tmp_path: Path,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
    agent_factory: list[AgentProcess],
) -> None:
    agent = AgentProcess(bus, log_dir=tmp_path)
    first = int(agent.env["SHOAL_NODE_PORT_FIRST"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first))
        squatter.listen()
        agent_factory.append(agent)
        await agent.start()
        await commands.publish(start_command(agent.node_id, images["hello"], "hello-1-skip"))
        (ready,) = await events.wait_for(ReplicaReady, lambda e: e.replica_id == "hello-1-skip")
    assert ready.endpoint == f"http://127.0.0.1:{first + 1}"
    assert await get_text(ready.endpoint + "/") == "hello from shoal\n"
