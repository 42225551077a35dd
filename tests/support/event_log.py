"""Everything published on some topics, collected in the background, for assertions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from events.bus import EventProducer
from events.consumer import LiveConsumer, from_beginning
from events.envelope import Envelope
from events.settings import BusSettings
from events.topics import Topic
from events.types import Payload

P = TypeVar("P", bound=Payload)


class EventLog:
    def __init__(self, settings: BusSettings, topics: list[Topic]) -> None:
        self.settings = settings
        self.topics = topics
        self.events: list[Envelope] = []
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer = EventProducer(settings, source="/shoal/test/event-log")

    async def __aenter__(self) -> EventLog:
        await self._producer.start()
        consumer = LiveConsumer(
            self.settings,
            name="event-log",
            topics=self.topics,
            handler=self._keep,
            dead_letters=self._producer,
            start_at=await from_beginning(self.settings, self.topics),
        )
        self._task = asyncio.create_task(consumer.run(self._stop))
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self._producer.stop()

    async def _keep(self, envelope: Envelope) -> None:
        self.events.append(envelope)
        self._changed.set()

    def of(self, kind: type[P], where: Callable[[P], bool] = lambda _: True) -> list[P]:
        return [e.data for e in self.events if isinstance(e.data, kind) and where(e.data)]

    async def wait_for(
        self,
        kind: type[P],
        where: Callable[[P], bool] = lambda _: True,
        timeout_s: float = 30.0,
        count: int = 1,
    ) -> list[P]:
        """The first `count` events of a kind that match, waiting for them to arrive."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.of(kind, where)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [f"{e.type} {e.subject}" for e in self.events[-15:]]
                raise AssertionError(
                    f"{count} {kind.__name__} not seen in {timeout_s} s (found {len(found)}); "
                    f"last events: {seen}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass
