"""The node-agent process: one command consumer for the agents it hosts (one real node, or
many hollow ones), their heartbeats, usage reports and container-exit watchers."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

import aiohttp

from events.bus import partitions_of
from events.consumer import LiveConsumer
from events.envelope import Envelope
from events.projections.world import World
from events.topics import NODE_COMMANDS, partition_for
from services.common.clock import SYSTEM_CLOCK, Clock
from services.common.loop import live_consumer, rebuild
from services.common.runtime import ServiceContext, run
from services.node_agent.agent import NodeAgent
from services.node_agent.docker_runtime import DockerRuntime
from services.node_agent.reports import report_usage
from services.node_agent.runtime import ReplicaRuntime, Resync
from services.node_agent.settings import Settings
from services.node_agent.sim_runtime import SimRuntime


def node_ids(settings: Settings) -> list[str]:
    if settings.hollow_nodes <= 1:
        return [settings.node_id]
    return [f"{settings.node_id}-{n:05d}" for n in range(settings.hollow_nodes)]


def make_runtime(settings: Settings, node_id: str) -> ReplicaRuntime:
    if settings.runtime == "sim":
        return SimRuntime(
            node_id=node_id,
            ready_delay_s=settings.sim_ready_delay_s,
            cpu_fraction=settings.sim_cpu_fraction,
        )
    return DockerRuntime(node_id=node_id, address=settings.address, network=settings.network)


def to_agent(
    agents: dict[str, NodeAgent], pick: Callable[[NodeAgent], Callable[[Envelope], None]]
) -> Callable[[Envelope], None]:
    """Route a command to the agent of its node; other nodes' commands share the partition."""

    def route(envelope: Envelope) -> None:
        agent = agents.get(envelope.subject)
        if agent is not None:
            pick(agent)(envelope)

    return route


async def every(
    interval_s: float, stop: asyncio.Event, work: Callable[[], Awaitable[None]]
) -> None:
    while not stop.is_set():
        await work()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def watch_exits(agent: NodeAgent) -> None:
    async for item in agent.runtime.exits():
        if isinstance(item, Resync):
            await agent.after_runtime_restart()
        else:
            await agent.on_exit(item)


def make_agents(
    ctx: ServiceContext, settings: Settings, http: aiohttp.ClientSession, clock: Clock
) -> dict[str, NodeAgent]:
    """The agents this process hosts (one node, or many hollow ones), sharing one world."""
    world = World()
    return {
        node_id: NodeAgent(
            node_id=node_id,
            settings=settings,
            runtime=make_runtime(settings, node_id),
            producer=ctx.producer,
            http=http,
            log=ctx.log,
            world=world,
            clock=clock,
        )
        for node_id in node_ids(settings)
    }


async def follow_commands(ctx: ServiceContext, agents: dict[str, NodeAgent]) -> LiveConsumer:
    """Fold the command partitions of these nodes, then follow them live."""
    bus = ctx.settings.bus
    topic = NODE_COMMANDS.name(bus.namespace)
    count = len((await partitions_of(bus, [topic]))[topic])
    mine = sorted({partition_for(node_id, count) for node_id in agents})
    ends = await rebuild(
        ctx,
        name="node-commands",
        topics=[NODE_COMMANDS],
        apply=to_agent(agents, lambda a: a.remember),
        partitions={NODE_COMMANDS: mine},
    )
    return live_consumer(
        ctx,
        name="node-commands",
        topics=[NODE_COMMANDS],
        apply=to_agent(agents, lambda a: a.carry_out),
        start_at=ends,
        max_batch=500,
    )


def background(
    ctx: ServiceContext, settings: Settings, agents: dict[str, NodeAgent], consumer: LiveConsumer
) -> list[asyncio.Task[None]]:
    """Commands, heartbeats, usage reports and every agent's exit watcher."""

    async def heartbeat() -> None:
        futures = [
            await ctx.producer.send(ctx.producer.envelope(agent.heartbeat()))
            for agent in agents.values()
        ]
        await asyncio.gather(*futures)

    async def usage() -> None:
        await asyncio.gather(*(report_usage(agent) for agent in agents.values()))

    async def consume() -> None:
        while not ctx.stop.is_set():
            await consumer.poll_once()

    return [
        asyncio.create_task(consume()),
        asyncio.create_task(every(settings.heartbeat_s, ctx.stop, heartbeat)),
        asyncio.create_task(every(settings.stats_s, ctx.stop, usage)),
        *(asyncio.create_task(watch_exits(agent)) for agent in agents.values()),
    ]


async def run_agents(ctx: ServiceContext, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
    async with aiohttp.ClientSession() as http:
        agents = make_agents(ctx, settings, http, clock)
        await asyncio.gather(*(agent.join() for agent in agents.values()))
        consumer = await follow_commands(ctx, agents)
        await consumer.start()
        await asyncio.gather(*(agent.reconcile() for agent in agents.values()))
        ctx.ready = True
        ctx.log.info("node-agent ready", nodes=len(agents), runtime=settings.runtime)
        tasks = background(ctx, settings, agents, consumer)
        try:
            await ctx.stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
            await asyncio.gather(*(agent.close() for agent in agents.values()))


def main() -> None:
    settings = Settings.from_env(os.environ)

    async def body(ctx: ServiceContext) -> None:
        await run_agents(ctx, settings)

    run(settings.common, body)
