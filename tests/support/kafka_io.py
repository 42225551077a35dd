"""Reading what is on the real broker, for assertions."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from events.bus import EventConsumer, EventProducer
from events.envelope import Envelope
from events.settings import BusSettings
from events.topics import Topic


async def collect(
    settings: BusSettings, topics: list[Topic], count: int, timeout_s: float = 30.0
) -> list[Envelope]:
    """The first `count` events of some topics, read from the beginning, in delivery order."""
    seen: list[Envelope] = []
    done = asyncio.Event()

    async def keep(envelope: Envelope) -> None:
        seen.append(envelope)
        if len(seen) >= count:
            done.set()

    producer = EventProducer(settings, source="/shoal/test/collector")
    await producer.start()
    consumer = EventConsumer(
        settings, name="collector", topics=topics, handler=keep, dead_letters=producer
    )
    task = asyncio.create_task(consumer.run(done))
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    except TimeoutError:
        raise AssertionError(
            f"only {len(seen)} of {count} events arrived in {timeout_s} s"
        ) from None
    finally:
        done.set()
        await task
        await producer.stop()
    return seen


async def raw_records(
    settings: BusSettings, topic: Topic, count: int, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` raw Kafka records of a topic."""
    consumer = AIOKafkaConsumer(
        topic.name(settings.namespace),
        bootstrap_servers=settings.bootstrap_servers,
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
