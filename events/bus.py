"""The bus: an idempotent producer and at-least-once consumers of Shoal events on Kafka."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from events import metrics
from events.envelope import Envelope, Headers, decode, encode, new_envelope
from events.errors import BusUnavailable, DecodeError, TopicNotReady
from events.settings import BusSettings
from events.topics import ALL_TOPICS, DEAD_LETTER, Topic, topic_of
from events.types import Payload

log = logging.getLogger("shoal.bus")

Handler = Callable[[Envelope], Awaitable[None]]
TOPIC_ALREADY_EXISTS = 36
HANDLER_ATTEMPTS = 3
LAG_EVERY_S = 1.0


def is_retriable(exc: BaseException) -> bool:
    """One retry policy for the bus: the error says whether waiting can help."""
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, OSError | TimeoutError)


def _until_reachable(settings: BusSettings) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(is_retriable),
        wait=wait_exponential(multiplier=0.1, max=3),
        stop=stop_after_delay(settings.connect_timeout_s),
        reraise=True,
    )


async def ensure_topics(settings: BusSettings, topics: Iterable[Topic] = ALL_TOPICS) -> None:
    """Create the missing topics with their partitions and retention; existing ones stay."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        async for attempt in _until_reachable(settings):
            with attempt:
                await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=topic.name(settings.namespace),
                num_partitions=topic.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"retention.ms": str(topic.retention_ms)},
            )
            for topic in topics
            if topic.name(settings.namespace) not in existing
        ]
        if not wanted:
            return
        response = await admin.create_topics(wanted)
        for name, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise BusUnavailable(f"could not create topic {name}: error {code} {rest}")
        async for attempt in _until_reachable(settings):
            with attempt:
                await _check_leaders(admin, [t.name for t in wanted])
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {settings.bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()


async def _check_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Raise TopicNotReady until every partition of the named topics has a leader."""
    for topic in await admin.describe_topics(names):
        partitions = topic["partitions"]
        if topic["error_code"] != 0 or not partitions or any(p["leader"] < 0 for p in partitions):
            raise TopicNotReady(f"topic {topic['topic']} has no leader yet")


async def partitions_of(settings: BusSettings, names: Sequence[str]) -> dict[str, list[int]]:
    """The partition numbers of each named topic; TopicNotReady when one is missing."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(list(names))}
    finally:
        await admin.close()
    result: dict[str, list[int]] = {}
    for name in names:
        topic = described.get(name)
        if topic is None or topic["error_code"] != 0 or not topic["partitions"]:
            raise TopicNotReady(f"topic {name} does not exist (yet); ensure_topics makes it")
        result[name] = sorted(p["partition"] for p in topic["partitions"])
    return result


class EventProducer:
    """Publishes envelopes (idempotent producer, acks=all) and dead-letters raw messages."""

    def __init__(self, settings: BusSettings, *, source: str) -> None:
        self.settings = settings
        self.source = source
        self._producer = AIOKafkaProducer(**settings.producer_kwargs())
        self._topic_names: dict[type[Payload], str] = {}

    async def start(self) -> None:
        try:
            async for attempt in _until_reachable(self.settings):
                with attempt:
                    await self._producer.start()
        except KafkaError as exc:
            raise BusUnavailable(
                f"Kafka at {self.settings.bootstrap_servers} unreachable: {exc!r}"
            ) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    def envelope(self, payload: Payload, *, causation_id: str | None = None) -> Envelope:
        return new_envelope(payload, source=self.source, causation_id=causation_id)

    async def publish(self, payload: Payload, *, causation_id: str | None = None) -> Envelope:
        """Publish one event and wait until Kafka acknowledged it."""
        envelope = self.envelope(payload, causation_id=causation_id)
        await (await self.send(envelope))
        return envelope

    async def send(self, envelope: Envelope) -> asyncio.Future[Any]:
        """Enqueue an envelope; the returned future resolves when Kafka acknowledged it."""
        payload_type = type(envelope.data)
        topic = self._topic_names.get(payload_type)
        if topic is None:
            topic = self._topic_names[payload_type] = topic_of(payload_type).name(
                self.settings.namespace
            )
        key, value, headers = encode(envelope)
        return await self.send_raw(topic, key=key, value=value, headers=headers)

    async def send_raw(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers
    ) -> asyncio.Future[Any]:
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                topic, key=key, value=value, headers=headers
            )
        except Exception as exc:
            if not is_retriable(exc):
                raise
            async for attempt in _until_reachable(self.settings):
                with attempt:
                    future = await self._producer.send(topic, key=key, value=value, headers=headers)
        metrics.EVENTS_SENT.by_topic[topic] += 1
        return future


class EventConsumer:
    """Feeds events of some topics to a handler, committing only after the handler returned.

    Three ways to read:
    - `group_id` alone: a consumer group shares the partitions (work distribution).
    - `group_id=None`: every partition from the beginning, nothing committed; this is how a
      service rebuilds its in-memory state from history and then follows the live tail.
    - `partitions`: exactly these partitions (a node-agent reads only its node's partition),
      with committed offsets when a `group_id` is given.
    With a `history_handler`, what was in the partitions when the consumer started goes to
    it (a service folds its state from history) and only what arrives later goes to
    `handler` (the service acts on it); `caught_up` is set at the boundary.
    A message that does not decode goes to the dead-letter topic with the reason; a handler
    that keeps raising sends its message there too; the consumer carries on either way.
    """

    def __init__(
        self,
        settings: BusSettings,
        *,
        name: str,
        topics: Sequence[Topic],
        handler: Handler,
        dead_letters: EventProducer,
        group_id: str | None = None,
        partitions: Mapping[Topic, Sequence[int]] | None = None,
        history_handler: Handler | None = None,
        max_batch: int = 500,
    ) -> None:
        if history_handler is not None and group_id is not None and partitions is None:
            raise ValueError("a history handler needs assigned partitions, not a group")
        self.settings = settings
        self.name = name
        self.topics = [topic.name(settings.namespace) for topic in topics]
        self.handler = handler
        self.history_handler = history_handler
        self.dead_letters = dead_letters
        self.group_id = group_id
        self._partitions = partitions
        self.max_batch = max_batch
        self.caught_up = asyncio.Event()
        """Set once everything that was in the topics when the consumer started is handled."""
        self._catch_up_targets: dict[TopicPartition, int] | None = None
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
            async for attempt in _until_reachable(self.settings):
                with attempt:
                    await self._consumer.start()
            if self._partitions is not None:
                self._consumer.assign(
                    [
                        TopicPartition(topic.name(self.settings.namespace), p)
                        for topic, numbers in self._partitions.items()
                        for p in numbers
                    ]
                )
            elif self.group_id is None:
                async for attempt in _until_reachable(self.settings):
                    with attempt:
                        await self._assign_all_from_beginning()
            else:
                self._consumer.subscribe(self.topics)
            if self.history_handler is not None:
                assignment = list(self._consumer.assignment())
                self._catch_up_targets = await self._consumer.end_offsets(assignment)
        except KafkaError as exc:
            raise BusUnavailable(f"consumer {self.name}: Kafka unreachable: {exc!r}") from exc

    async def _assign_all_from_beginning(self) -> None:
        partitions = await partitions_of(self.settings, self.topics)
        assignment = [TopicPartition(topic, p) for topic in self.topics for p in partitions[topic]]
        self._consumer.assign(assignment)
        await self._consumer.seek_to_beginning(*assignment)

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

    async def catch_up(self) -> None:
        """Handle everything that was in the topics when the consumer started."""
        while not self.caught_up.is_set():
            await self.poll_once()

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Fetch one batch, handle it, commit it; returns how many records it held."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_batch)
        handled = 0
        for tp, records in batches.items():
            for record in records:
                await self._deliver(record)
                handled += 1
            metrics.EVENTS_CONSUMED.labels(self.name, tp.topic).inc(len(records))
        if handled and self.group_id is not None:
            await self._commit()
        await self._observe_progress()
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
        headers = record.headers
        try:
            envelope = decode(record.key, record.value, headers)
        except DecodeError as exc:
            await self._dead_letter(record, headers, f"undecodable: {exc}")
            return
        handler = self.handler
        if self.history_handler is not None and not self.caught_up.is_set():
            targets = self._catch_up_targets or {}
            if record.offset < targets.get(TopicPartition(record.topic, record.partition), 0):
                handler = self.history_handler
        try:
            await handler(envelope)
        except asyncio.CancelledError:
            raise
        except Exception:
            await self._retry_handler(record, headers, envelope, handler)

    async def _retry_handler(
        self,
        record: ConsumerRecord[bytes, bytes],
        headers: Headers,
        envelope: Envelope,
        handler: Handler,
    ) -> None:
        """The handler raised once: retry with back-off, then dead-letter the event."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(HANDLER_ATTEMPTS - 1),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                reraise=True,
            ):
                with attempt:
                    await handler(envelope)
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
            await self._dead_letter(
                record, headers, f"handler failed {HANDLER_ATTEMPTS} times: {exc!r}"
            )

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], headers: Headers, reason: str
    ) -> None:
        metrics.DEAD_LETTERS.labels(self.name, record.topic).inc()
        log.warning(
            "dead-lettered a message",
            extra={
                "fields": {
                    "consumer": self.name,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "reason": reason,
                }
            },
        )
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        future = await self.dead_letters.send_raw(
            DEAD_LETTER.name(self.settings.namespace),
            key=record.topic.encode(),
            value=record.value,
            headers=[
                *headers,
                ("shoal_dlq_reason", reason.encode()),
                ("shoal_dlq_origin", origin.encode()),
                ("shoal_dlq_consumer", self.name.encode()),
            ],
        )
        await future

    async def _observe_progress(self) -> None:
        assignment = self._consumer.assignment()
        if not assignment:
            return
        now = time.monotonic()
        if now - self._lag_observed_at >= LAG_EVERY_S:
            # Scrapes come every few seconds; the loop polls every few milliseconds.
            self._lag_observed_at = now
            for tp in assignment:
                highwater = self._consumer.highwater(tp)
                if highwater is not None:
                    position = await self._consumer.position(tp)
                    lag = max(0, highwater - position)
                    metrics.CONSUMER_LAG.labels(self.name, tp.topic).set(lag)
        if self.caught_up.is_set():
            return
        if self._catch_up_targets is None:
            self._catch_up_targets = await self._consumer.end_offsets(list(assignment))
        for tp, end in self._catch_up_targets.items():
            if tp in assignment and await self._consumer.position(tp) < end:
                return
        self.caught_up.set()
