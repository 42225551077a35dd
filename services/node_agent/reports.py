"""What a node-agent reports besides its replicas' lifecycle: CPU and memory use."""

from __future__ import annotations

import asyncio

from events.lifecycle import ReplicaState
from events.types import ContainerStats
from services.node_agent.agent import NodeAgent
from services.node_agent.replica import Replica

STATS_CONCURRENCY = 16


async def report_usage(agent: NodeAgent) -> None:
    """Publish CPU and memory of every ready replica of one agent."""
    limit = asyncio.Semaphore(STATS_CONCURRENCY)

    async def one(replica: Replica) -> None:
        async with limit:
            usage = await agent.runtime.usage(
                replica.replica_id, cpu_limit=replica.command.spec.cpu
            )
        if usage is None or replica.state is not ReplicaState.READY:
            return
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
