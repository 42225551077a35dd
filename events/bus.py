"""The bus: topics made and described, and the idempotent producer of Shoal events.

Reading is elsewhere: `events.history` reads what a set of partitions held when the read
began; `events.consumer` follows them live."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from events import metrics
from events.envelope import Envelope, Headers, encode, new_envelope
from events.errors import BusUnavailable, TopicNotReady
from events.settings import BusSettings
from events.topics import ALL_TOPICS, Topic, topic_of
from events.types import Payload

log = logging.getLogger("shoal.bus")

Handler = Callable[[Envelope], Awaitable[None]]
TOPIC_ALREADY_EXISTS = 36


def is_retriable(exc: BaseException) -> bool:
    """One retry policy for the bus: the error says whether waiting can help."""
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, OSError | TimeoutError)


def until_reachable(settings: BusSettings) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(is_retriable),
        wait=wait_exponential(multiplier=0.1, max=3),
        stop=stop_after_delay(settings.connect_timeout_s),
        reraise=True,
    )


async def ensure_topics(settings: BusSettings, topics: Iterable[Topic] = ALL_TOPICS) -> None:
    """Create the missing topics with their partitions and configs; existing ones keep
    their partitions and get the declared configs."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        async for attempt in until_reachable(settings):
            with attempt:
                await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=topic.name(settings.namespace),
                num_partitions=topic.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=topic_configs(topic),
            )
            for topic in topics
            if topic.name(settings.namespace) not in existing
        ]
        await _configure(
            admin, settings, [t for t in topics if t.name(settings.namespace) in existing]
        )
        if not wanted:
            return
        response = await admin.create_topics(wanted)
        for name, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise BusUnavailable(f"could not create topic {name}: error {code} {rest}")
        async for attempt in until_reachable(settings):
            with attempt:
                await _check_leaders(admin, [t.name for t in wanted])
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {settings.bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()


def topic_configs(topic: Topic) -> dict[str, str]:
    """A topic's declared configs. The broker stamps each record with the time it appended
    it, so that a writer cannot date an event: replay places history by that time."""
    return {"retention.ms": str(topic.retention_ms), "message.timestamp.type": "LogAppendTime"}


async def _configure(
    admin: AIOKafkaAdminClient, settings: BusSettings, topics: list[Topic]
) -> None:
    """Give existing topics (made by an older Shoal) the declared configs; a refusal is
    logged, not fatal: readers then fall back to the writers' times."""
    if not topics:
        return
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, t.name(settings.namespace), topic_configs(t))
        for t in topics
    ]
    for response in await admin.alter_configs(resources):
        for code, message, _kind, name in response.resources:
            if code != 0:
                log.warning(
                    "could not configure topic",
                    extra={"fields": {"topic": name, "error": code, "message": message}},
                )


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

    def __init__(self, settings: BusSettings, *, source: str, role: str | None = None) -> None:
        self.settings = settings
        self.source = source
        self.role = role
        """The service role this producer speaks for: an event type with a home on more
        than one topic goes to its role's (`events.topics.topic_of`)."""
        self._producer = AIOKafkaProducer(**settings.producer_kwargs())
        self._topic_names: dict[type[Payload], str] = {}

    async def start(self) -> None:
        try:
            async for attempt in until_reachable(self.settings):
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
            home = topic_of(payload_type, self.role)
            topic = self._topic_names[payload_type] = home.name(self.settings.namespace)
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
            async for attempt in until_reachable(self.settings):
                with attempt:
                    future = await self._producer.send(topic, key=key, value=value, headers=headers)
        metrics.EVENTS_SENT.by_topic[topic] += 1
        return future
