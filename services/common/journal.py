"""One way to publish: an event this process publishes is applied to its own projections
at once, so that it reads its own writes; its echo from Kafka is then skipped by the fold,
which applies each event id once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from events.bounds import within_bounds
from events.bus import EventProducer
from events.envelope import Envelope, new_envelope
from events.types import Payload
from services.common.clock import Clock


class Unacknowledged(TimeoutError):
    """Kafka did not acknowledge in time; the event may still be written, and then applied."""


class Journal:
    def __init__(
        self, producer: EventProducer, *, apply: Callable[[Envelope], object], clock: Clock
    ) -> None:
        self.producer = producer
        self.apply = apply
        self.clock = clock
        self._unsettled: set[asyncio.Task[Envelope]] = set()

    def envelope(self, payload: Payload, *, causation_id: str | None = None) -> Envelope:
        """The event as every reader will accept it: texts, lists and measures held within
        their declared bounds (a decision's inputs may be infinite; a reason may be long)."""
        return new_envelope(
            within_bounds(payload),
            source=self.producer.source,
            causation_id=causation_id,
            at=self.clock.wall(),
        )

    async def publish(self, payload: Payload, *, causation_id: str | None = None) -> Envelope:
        """Publish, wait for Kafka's acknowledgement, then apply."""
        envelope = self.envelope(payload, causation_id=causation_id)
        await (await self.producer.send(envelope))
        self.apply(envelope)
        return envelope

    async def publish_within(self, payload: Payload, timeout_s: float) -> Envelope:
        """Publish, waiting at most `timeout_s` for the acknowledgement. Past it the publish
        goes on (the event may yet be written, and is then applied) and Unacknowledged is
        raised: the caller must not say that nothing happened."""
        task = asyncio.ensure_future(self.publish(payload))
        self._unsettled.add(task)
        task.add_done_callback(self._settled)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            raise Unacknowledged(f"not acknowledged within {timeout_s:g} s") from None

    def _settled(self, task: asyncio.Task[Envelope]) -> None:
        self._unsettled.discard(task)
        if not task.cancelled():
            task.exception()

    async def enqueue(
        self, payload: Payload, *, causation_id: str | None = None
    ) -> tuple[Envelope, asyncio.Future[Any]]:
        """Apply at once and hand to the producer; the future resolves on acknowledgement."""
        envelope = self.envelope(payload, causation_id=causation_id)
        acknowledged = await self.producer.send(envelope)
        self.apply(envelope)
        return envelope, acknowledged
