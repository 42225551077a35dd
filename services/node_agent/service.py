"""The node-agent process: one consumer of commands (and of news of its nodes) for the
agents it hosts (one real node, or many hollow ones), their heartbeats, usage reports and
container-exit watchers, each loop supervised."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp
from aiokafka import TopicPartition

from events.bus import partitions_of
from events.consumer import LiveConsumer
from events.envelope import Envelope
from events.projections.world import World
from events.topics import NODE_COMMANDS, NODES, Topic, partition_for
from services.common.clock import SYSTEM_CLOCK, Clock
from services.common.liveness import supervised
from services.common.loop import live_consumer, rebuild
from services.common.runtime import ServiceContext, run
from services.node_agent.agent import NodeAgent
from services.node_agent.docker_runtime import DockerRuntime
from services.node_agent.reports import heartbeat, report_usage, say_runtime
from services.node_agent.runtime import ReplicaRuntime, Resync
from services.node_agent.secret_files import SecretFiles, secrets_dir_of
from services.node_agent.settings import Settings
from services.node_agent.sim_runtime import SimRuntime

FOLLOWED = (NODE_COMMANDS, NODES)
"""A node's commands, and what the log says of the node itself (its loss and return)."""

PAUSE_S = 2.0
"""A poll of the command loop that took longer than this means the process did not run
(SIGSTOP, a frozen host, a stall): the point it aimed to read up to may be long stale."""


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
    return DockerRuntime(
        node_id=node_id,
        address=settings.address,
        network=settings.network,
        sandbox=settings.sandbox,
        secret_files=SecretFiles(
            secrets_dir_of(node_id, settings.secrets_dir), settings.sealing_key
        ),
    )


class Commands:
    """Routes what the agents' partitions hold to the agent of each node (other nodes share
    the partitions), and knows which agents have something to act on."""

    def __init__(self, agents: dict[str, NodeAgent]) -> None:
        self.agents = agents
        self.dirty: set[str] = set()

    def fold(self, envelope: Envelope) -> None:
        agent = self.agents.get(envelope.subject)
        if agent is not None:
            agent.remember(envelope)
            self.dirty.add(envelope.subject)

    def act(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for node in sorted(dirty):
            self.agents[node].converge()


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


async def my_partitions(ctx: ServiceContext, nodes: list[str]) -> dict[Topic, list[int]]:
    bus = ctx.settings.bus
    names = [topic.name(bus.namespace) for topic in FOLLOWED]
    counts = {name: len(found) for name, found in (await partitions_of(bus, names)).items()}
    return {
        topic: sorted({partition_for(node, counts[topic.name(bus.namespace)]) for node in nodes})
        for topic in FOLLOWED
    }


async def follow(
    ctx: ServiceContext,
    commands: Commands,
    consumer: LiveConsumer,
    beat_s: float,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Fold what arrives; act only once everything up to a point taken after the last
    action is read: where the partitions ended by the last fetch responses, when those
    are recent. A round that outlasted PAUSE_S (the process was paused or starved) drops
    its point and asks the broker for a new one, which lies past everything written
    meanwhile (the node's loss included), so a stale start is never carried out."""
    target: dict[TopicPartition, int] | None = None
    ask_broker = True
    while not ctx.stop.is_set():
        began = clock.now()
        await consumer.poll_once()
        ctx.liveness.beat("commands", within_s=max(60.0, 10 * beat_s))
        if consumer.stalled():
            await consumer.restart()
        if target is None:
            known = None if ask_broker else consumer.known_ends(PAUSE_S)
            target = known if known is not None else await consumer.end_offsets()
        if clock.now() - began > PAUSE_S:
            target, ask_broker = None, True
        elif await consumer.reached(target):
            commands.act()
            target, ask_broker = None, False


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
            lost = await agent.after_runtime_restart()
            await say_runtime(agent, True, "the container engine answers again", lost)
        else:
            await agent.on_exit(item)


def background(
    ctx: ServiceContext,
    settings: Settings,
    commands: Commands,
    consumer: LiveConsumer,
    clock: Clock,
) -> list[asyncio.Task[None]]:
    """Commands, heartbeats, usage reports and every agent's exit watcher, supervised."""
    agents = commands.agents

    async def beat() -> None:
        for agent in agents.values():
            if not agent.runtime.available:
                await say_runtime(agent, False, "the container engine does not answer", [])
        futures = [
            await ctx.producer.send(ctx.producer.envelope(heartbeat(agent)))
            for agent in agents.values()
        ]
        await asyncio.gather(*futures)
        ctx.liveness.beat("heartbeats", within_s=max(60.0, 10 * settings.heartbeat_s))

    async def usage() -> None:
        await asyncio.gather(*(report_usage(agent) for agent in agents.values()))

    loops: dict[str, Callable[[], Awaitable[None]]] = {
        "commands": partial(follow, ctx, commands, consumer, settings.heartbeat_s, clock),
        "heartbeats": partial(every, settings.heartbeat_s, ctx.stop, beat),
        "usage": partial(every, settings.stats_s, ctx.stop, usage),
        **{f"exits {node}": partial(watch_exits, agent) for node, agent in agents.items()},
    }
    return [
        asyncio.create_task(supervised(name, work, log=ctx.log, stop=ctx.stop))
        for name, work in loops.items()
    ]


async def run_agents(ctx: ServiceContext, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
    async with aiohttp.ClientSession() as http:
        agents = make_agents(ctx, settings, http, clock)
        await asyncio.gather(*(agent.join() for agent in agents.values()))
        commands = Commands(agents)
        partitions = await my_partitions(ctx, list(agents))
        ends = await rebuild(
            ctx, name="node-commands", topics=FOLLOWED, apply=commands.fold, partitions=partitions
        )
        consumer = live_consumer(
            ctx,
            name="node-commands",
            topics=FOLLOWED,
            apply=commands.fold,
            start_at=ends,
            max_batch=500,
        )
        await consumer.start()
        await asyncio.gather(*(agent.reconcile() for agent in agents.values()))
        commands.dirty.update(agents)
        commands.act()
        ctx.ready = True
        ctx.log.info("node-agent ready", nodes=len(agents), runtime=settings.runtime)
        tasks = background(ctx, settings, commands, consumer, clock)
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
