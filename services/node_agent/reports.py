"""What a node-agent reports besides its replicas' lifecycle: its heartbeat, whether its
container engine answers, and CPU and memory use."""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge

from events.bounds import within_bounds
from events.lifecycle import LIVE, ReplicaState
from events.types import ContainerStats, NodeHeartbeat, NodeRuntimeChanged
from services.node_agent.agent import NodeAgent
from services.node_agent.leaving import is_busy
from services.node_agent.replica import Replica

STATS_CONCURRENCY = 16
CONTAINERS = Gauge("shoal_node_containers", "Replica containers running on the node", ["node"])
RUNTIME_UP = Gauge("shoal_node_runtime_up", "1 while the container engine answers", ["node"])


async def report_usage(agent: NodeAgent) -> None:
    """Publish CPU and memory of every ready replica of one agent."""
    limit = asyncio.Semaphore(STATS_CONCURRENCY)

    async def one(replica: Replica) -> None:
        async with limit:
            if replica.state is not ReplicaState.READY:  # stopping meanwhile: the engine
                return  # takes a second to tell a stopping container's use
            usage = await agent.runtime.usage(
                replica.replica_id, cpu_limit=replica.command.spec.cpu
            )
            connections = await agent.runtime.connections(replica.replica_id)
        replica.busy = is_busy(connections, usage.cpu_cores if usage else 0.0)
        if usage is None or replica.state is not ReplicaState.READY:
            return
        replica.used = (usage.cpu_cores, usage.memory_bytes / 2**20)
        stats = ContainerStats(
            function=replica.command.function,
            revision=replica.command.revision,
            replica_id=replica.replica_id,
            node=agent.node_id,
            cpu_fraction=usage.cpu_fraction_of_limit,
            cpu_cores_used=usage.cpu_cores,
            memory_bytes=usage.memory_bytes,
            memory_limit_bytes=usage.memory_limit_bytes,
        )
        await agent.producer.send(agent.producer.envelope(stats))

    ready = [r for r in agent.replicas.values() if r.state is ReplicaState.READY]
    await asyncio.gather(*(one(r) for r in ready), return_exceptions=True)


async def say_runtime(agent: NodeAgent, available: bool, reason: str, lost: list[str]) -> None:
    """Tell the log the engine went away or came back (once per change)."""
    RUNTIME_UP.labels(agent.node_id).set(int(available))
    if available == agent.runtime_said:
        return
    agent.runtime_said = available
    changed = NodeRuntimeChanged(
        node=agent.node_id, available=available, reason=reason, lost_replicas=lost
    )
    await agent.publish(within_bounds(changed), None)


def heartbeat(agent: NodeAgent) -> NodeHeartbeat:
    """The node's heartbeat: while its engine is away, it lists no replica (it cannot
    see them), and says so."""
    live = [r for r in agent.replicas.values() if r.state in LIVE]
    CONTAINERS.labels(agent.node_id).set(len(live))
    agent.heartbeats += 1
    seen = live if agent.runtime.available else []
    return NodeHeartbeat(
        node=agent.node_id,
        seq=agent.heartbeats,
        capacity=agent.capacity,
        used_cpus=round(sum(r.command.spec.requested_cpu for r in live), 6),
        used_memory_mb=sum(r.command.spec.requested_memory_mb for r in live),
        cpu_cores_used=round(sum(r.used[0] for r in live), 4),
        memory_mb_used=round(sum(r.used[1] for r in live), 1),
        replicas=len(seen),
        replica_ids=sorted(r.command.replica_id for r in seen),
        busy_ids=sorted(r.command.replica_id for r in seen if r.busy),
        runtime_ok=agent.runtime.available,
    )
