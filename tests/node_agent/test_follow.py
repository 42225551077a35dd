"""The node-agent's command loop acts only on a log read up to a point taken after its
last pause: a start written while it was stopped is not carried out before the news of
its node's loss, written at the same time to another partition, is read too."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from aiokafka import TopicPartition

from services.common.liveness import Liveness
from services.common.runtime import ServiceContext
from services.node_agent.service import PAUSE_S, Commands, follow

COMMANDS = TopicPartition("node-commands", 0)
NODES = TopicPartition("nodes", 0)


@dataclass
class DrivenClock:
    t: float = 0.0

    def now(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


@dataclass
class Poll:
    """One poll: how long it lasts, what the broker gains meanwhile, what it delivers."""

    lasts_s: float
    written: dict[TopicPartition, list[str]]
    delivers: dict[TopicPartition, int]


@dataclass
class ScriptedConsumer:
    """A consumer over one list per partition, each poll following the script."""

    clock: DrivenClock
    stop: asyncio.Event
    script: list[Poll]
    read: list[str] = field(default_factory=list)
    logs: dict[TopicPartition, list[str]] = field(default_factory=lambda: {COMMANDS: [], NODES: []})
    positions: dict[TopicPartition, int] = field(default_factory=lambda: {COMMANDS: 0, NODES: 0})
    known: dict[TopicPartition, int] = field(default_factory=dict)
    """Where the partitions ended by the last fetch response: as they stood when the
    previous poll began (a response that came in before a pause is read after it)."""
    _began: dict[TopicPartition, int] = field(default_factory=dict)

    async def poll_once(self) -> int:
        poll = self.script.pop(0)
        self.known = self._began or {tp: 0 for tp in self.logs}
        self._began = {tp: len(log) for tp, log in self.logs.items()}
        self.clock.t += poll.lasts_s
        for tp, records in poll.written.items():
            self.logs[tp].extend(records)
        for tp, count in poll.delivers.items():
            at = self.positions[tp]
            self.read.extend(self.logs[tp][at : at + count])
            self.positions[tp] = at + count
        if not self.script:
            self.stop.set()
        return sum(poll.delivers.values())

    def stalled(self) -> bool:
        return False

    def known_ends(self, within_s: float) -> dict[TopicPartition, int]:
        return dict(self.known)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        return {tp: len(log) for tp, log in self.logs.items()}

    async def reached(self, target: dict[TopicPartition, int]) -> bool:
        return all(self.positions[tp] >= end for tp, end in target.items())


class Acts(Commands):
    """Commands that note what had been read each time they were told to act."""

    def __init__(self, consumer: ScriptedConsumer) -> None:
        super().__init__({})
        self.consumer = consumer
        self.acted_on: list[list[str]] = []

    def act(self) -> None:
        self.acted_on.append(list(self.consumer.read))


async def acts_after(script: list[Poll]) -> list[list[str]]:
    clock = DrivenClock()
    stop = asyncio.Event()
    consumer = ScriptedConsumer(clock, stop, script)
    commands = Acts(consumer)
    ctx = cast(ServiceContext, SimpleNamespace(stop=stop, liveness=Liveness(clock)))
    await follow(ctx, commands, cast(Any, consumer), 1.0, clock)
    return commands.acted_on


def paused_script(pause_s: float) -> list[Poll]:
    """A heartbeat is in flight; the agent stops for `pause_s` while a start for it and
    its node's loss are written; on waking it reads the start and the old heartbeat."""
    return [
        Poll(0.1, {NODES: ["beat"]}, {}),
        Poll(pause_s, {COMMANDS: ["start"], NODES: ["lost"]}, {COMMANDS: 1, NODES: 1}),
        Poll(0.1, {}, {}),
        Poll(0.1, {}, {NODES: 1}),
        Poll(0.1, {}, {}),
    ]


async def test_a_start_read_after_a_pause_waits_for_the_news_written_beside_it() -> None:
    acted = await acts_after(paused_script(10.0))
    assert acted, "the loop acts once it has read up to a fresh point"
    assert all("lost" in read for read in acted if "start" in read), acted


async def test_without_a_pause_the_loop_acts_as_soon_as_its_point_is_read() -> None:
    acted = await acts_after(paused_script(PAUSE_S / 4))
    assert acted[0] == ["start", "beat"], "a short poll keeps its point: no extra round"
