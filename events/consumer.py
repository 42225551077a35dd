"""The live consumer: follows topics and hands each event to a handler, at least once.

It starts either where a consumer group committed (and then commits after each handled
batch) or at given offsets (where a history read ended). A message that does not decode,
or whose handler keeps raising, goes to the dead-letter topic; the consumer carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from events import metrics
from events.bus import EventProducer, partitions_of, until_reachable
from events.deadletter import DeadLetters
from events.envelope import Envelope, decode
from events.errors import BusUnavailable, DecodeError
from events.settings import BusSettings
from events.topics import Topic

log = logging.getLogger("shoal.bus")

Handler = Callable[[Envelope], Awaitable[None]]
HANDLER_ATTEMPTS = 3
LAG_EVERY_S = 1.0


def decoded(record: ConsumerRecord[bytes, bytes]) -> Envelope | str:
    """The record's event, or why it is not one."""
    try:
        return decode(record.key, record.value, record.headers)
    except DecodeError as exc:
        return f"undecodable: {exc}"


async def from_beginning(
    settings: BusSettings, topics: Sequence[Topic]
) -> dict[TopicPartition, int]:
    """Offsets that start a live consumer at the beginning of every partition of `topics`
    (what Kafka still holds of them)."""
    names = [topic.name(settings.namespace) for topic in topics]
    async for attempt in until_reachable(settings):
        with attempt:
            found = await partitions_of(settings, names)
    return {TopicPartition(name, p): 0 for name in names for p in found[name]}


class LiveConsumer:
    """Follows `topics` from `start_at` (offsets per partition), or from what `group_id`
    committed; hands every event to `handler`."""

    def __init__(
        self,
        settings: BusSettings,
        *,
        name: str,
        topics: Sequence[Topic],
        handler: Handler,
        dead_letters: EventProducer,
        group_id: str | None = None,
        start_at: Mapping[TopicPartition, int] | None = None,
        max_batch: int = 500,
    ) -> None:
        if (group_id is None) == (start_at is None):
            raise ValueError("give a consumer group or the offsets to start at, not both")
        self.settings = settings
        self.name = name
        self.topics = [topic.name(settings.namespace) for topic in topics]
        self.handler = handler
        self.dead_letters = DeadLetters(dead_letters, consumer=name)
        self.group_id = group_id
        self.start_at = dict(start_at or {})
        self.max_batch = max_batch
        self.last_progress = time.monotonic()
        """When a poll last returned (the loop's liveness)."""
        self._lag_observed_at = float("-inf")
        self._consumer = AIOKafkaConsumer(
            **settings.client_kwargs(),
            group_id=group_id,
            client_id=f"shoal-{name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def start(self) -> None:
        try:
            async for attempt in until_reachable(self.settings):
                with attempt:
                    await self._consumer.start()
            if self.group_id is not None:
                self._consumer.subscribe(self.topics)
                return
            self._consumer.assign(list(self.start_at))
            for tp, offset in self.start_at.items():
                self._consumer.seek(tp, offset)
        except KafkaError as exc:
            raise BusUnavailable(f"consumer {self.name}: Kafka unreachable: {exc!r}") from exc

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Start, then handle events until `stop` is set; always stops the Kafka consumer."""
        await self.start()
        try:
            while not stop.is_set():
                await self.poll_once()
        finally:
            await self.stop()

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Fetch one batch, handle it, commit it; returns how many records it held."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_batch)
        handled = 0
        for tp, records in batches.items():
            for record in records:
                await self._deliver(record)
            handled += len(records)
            metrics.EVENTS_CONSUMED.labels(self.name, tp.topic).inc(len(records))
        if handled and self.group_id is not None:
            await self._commit()
        self.last_progress = time.monotonic()
        await self._observe_lag()
        return handled

    async def _commit(self) -> None:
        """Commit what was handled; on failure the next commit covers it (or Kafka redelivers)."""
        try:
            await self._consumer.commit()
        except KafkaError as exc:
            log.warning(
                "commit failed; will redeliver or commit later",
                extra={"fields": {"consumer": self.name, "error": repr(exc)}},
            )

    async def _deliver(self, record: ConsumerRecord[bytes, bytes]) -> None:
        envelope = decoded(record)
        if isinstance(envelope, str):
            await self.dead_letters.send(record, envelope)
            return
        try:
            await self.handler(envelope)
        except asyncio.CancelledError:
            raise
        except Exception:
            await self._retry_handler(record, envelope)

    async def _retry_handler(
        self, record: ConsumerRecord[bytes, bytes], envelope: Envelope
    ) -> None:
        """The handler raised once: retry with back-off, then dead-letter the event."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(HANDLER_ATTEMPTS - 1),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                reraise=True,
            ):
                with attempt:
                    await self.handler(envelope)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.HANDLER_ERRORS.labels(self.name).inc()
            log.exception(
                "handler failed",
                extra={
                    "fields": {
                        "consumer": self.name,
                        "event_id": envelope.id,
                        "type": envelope.type,
                        "subject": envelope.subject,
                    }
                },
            )
            await self.dead_letters.send(
                record, f"handler failed {HANDLER_ATTEMPTS} times: {exc!r}"
            )

    async def _observe_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_observed_at < LAG_EVERY_S:
            return
        # Scrapes come every few seconds; the loop polls every few milliseconds.
        self._lag_observed_at = now
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                position = await self._consumer.position(tp)
                metrics.CONSUMER_LAG.labels(self.name, tp.topic).set(max(0, highwater - position))
