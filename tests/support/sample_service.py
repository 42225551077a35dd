"""A minimal service on the common runtime: it heartbeats as node "sample" until stopped."""

from __future__ import annotations

import asyncio
import os

from events.types import NodeCapacity, NodeHeartbeat
from services.common.runtime import ServiceContext, run
from services.common.settings import CommonSettings


async def heartbeat(ctx: ServiceContext) -> None:
    capacity = NodeCapacity(cpus=1, memory_mb=512, max_replicas=1)
    seq = 0
    ctx.ready = True
    while not ctx.stop.is_set():
        await ctx.producer.publish(
            NodeHeartbeat(
                node="sample", seq=seq, capacity=capacity, used_cpus=0, used_memory_mb=0, replicas=0
            )
        )
        seq += 1
        try:
            await asyncio.wait_for(ctx.stop.wait(), 0.2)
        except TimeoutError:
            pass


if __name__ == "__main__":
    run(CommonSettings.from_env(os.environ, service="sample", default_port=0), heartbeat)
