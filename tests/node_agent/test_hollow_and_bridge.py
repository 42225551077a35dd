"""Hollow nodes (the sim runtime) at count, and bridge networking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.bus import EventProducer
from events.settings import BusSettings
from events.types import DrainReplica, NodeHeartbeat, NodeJoined, ReplicaReady, ReplicaStopped
from tests.node_agent.conftest import start_command
from tests.support.event_log import EventLog
from tests.support.service_process import AgentProcess

pytestmark = [pytest.mark.kafka]


async def test_a_hundred_hollow_nodes_in_one_process_join_heartbeat_and_run_replicas(
    bus: BusSettings,
    tmp_path: Path,
    events: EventLog,
    commands: EventProducer,
    agent_factory: list[AgentProcess],
) -> None:
    hollow = AgentProcess(
        bus,
        log_dir=tmp_path,
        node_id="hollow",
        SHOAL_NODE_RUNTIME="sim",
        SHOAL_NODE_HOLLOW_NODES="100",
        SHOAL_NODE_HEARTBEAT_S="1",
        SHOAL_NODE_SIM_READY_DELAY_S="0.05",
    )
    agent_factory.append(hollow)
    await hollow.start()
    joined = await events.wait_for(NodeJoined, count=100)
    nodes = {j.node for j in joined}
    assert len(nodes) == 100
    assert all(j.runtime == "sim" for j in joined)
    beats = await events.wait_for(NodeHeartbeat, lambda b: b.seq >= 3, count=100, timeout_s=30)
    assert {b.node for b in beats} == nodes
    for node in ("hollow-00000", "hollow-00042", "hollow-00099"):
        await commands.publish(start_command(node, "any/image:1", f"f-{node}"))
    ready = await events.wait_for(ReplicaReady, count=3)
    assert {r.node for r in ready} == {"hollow-00000", "hollow-00042", "hollow-00099"}
    assert all(r.endpoint.startswith("sim://") for r in ready)
    await commands.publish(
        DrainReplica(node="hollow-00042", function="hello", replica_id="f-hollow-00042", drain_s=0)
    )
    (stopped,) = await events.wait_for(ReplicaStopped)
    assert stopped.node == "hollow-00042"
    busy = await events.wait_for(
        NodeHeartbeat, lambda b: b.node == "hollow-00000" and b.replicas == 1
    )
    assert busy[0].used_cpus == pytest.approx(0.05)  # requested: the default, below its limit


@pytest.mark.docker
async def test_bridge_networking_publishes_the_replica_port_on_loopback(
    bus: BusSettings,
    tmp_path: Path,
    events: EventLog,
    commands: EventProducer,
    images: dict[str, str],
    agent_factory: list[AgentProcess],
    docker_client: Any,
) -> None:
    agent = AgentProcess(bus, log_dir=tmp_path, SHOAL_NODE_NETWORK="bridge")
    agent_factory.append(agent)
    await agent.start()
    await commands.publish(start_command(agent.node_id, images["hello"], "br-1-a", port=8080))
    (ready,) = await events.wait_for(ReplicaReady)
    assert ready.endpoint.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(ready.endpoint + "/") as reply:
        assert await reply.text() == "hello from shoal\n"
    host = docker_client.api.inspect_container("shoal-br-1-a")["HostConfig"]
    assert host["NetworkMode"] != "host"
    binding = host["PortBindings"]["8080/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    assert ready.endpoint.endswith(f":{binding['HostPort']}")
