"""Reading what is on the real broker, for assertions."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from events.envelope import Envelope
from events.settings import BusSettings
from events.topics import ALL_TOPICS, Topic
from events.types import Payload
from tests.support.event_log import EventLog


async def collect(
    settings: BusSettings, topics: list[Topic], count: int, timeout_s: float = 30.0
) -> list[Envelope]:
    """The first `count` events of some topics, read from the beginning, in delivery order."""
    async with EventLog(settings, topics) as log:
        await log.wait_for(Payload, count=count, timeout_s=timeout_s)
        return log.events[:count]


async def raw_records(
    settings: BusSettings, topic: Topic, count: int, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` raw Kafka records of a topic."""
    consumer = AIOKafkaConsumer(
        topic.name(settings.namespace),
        **settings.client_kwargs(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    assert len(records) >= count, f"only {len(records)} of {count} records on {topic.suffix}"
    return records


async def every_record_value(settings: BusSettings, timeout_s: float = 30.0) -> bytes:
    """Every record (key and value) on every topic of the namespace, read to its end, as
    one byte string: what a scan for a leaked value looks through."""
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[bytes] = []
    try:
        partitions = [
            TopicPartition(topic.name(settings.namespace), p)
            for topic in ALL_TOPICS
            for p in range(topic.partitions)
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            assert time.monotonic() < deadline, "the topics were not read to their end in time"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                found.extend((r.key or b"") + b"\n" + (r.value or b"") for r in batch)
    finally:
        await consumer.stop()
    return b"\n".join(found)
