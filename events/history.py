"""Reading the whole history from Kafka: every partition of some topics from the beginning
up to where they ended when the read began (what `shoal audit` and `shoal replay` use)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from events.bus import partitions_of
from events.envelope import Envelope, decode
from events.errors import BusUnavailable, DecodeError
from events.settings import BusSettings
from events.topics import ALL_TOPICS, DEAD_LETTER, Topic

HISTORY_TOPICS: tuple[Topic, ...] = tuple(
    topic for topic in ALL_TOPICS if topic.history and topic is not DEAD_LETTER
)
METRIC_TOPICS: tuple[Topic, ...] = tuple(topic for topic in ALL_TOPICS if not topic.history)


@dataclass
class ReadCounts:
    events: int = 0
    undecodable: int = 0


async def read_batches(
    settings: BusSettings,
    topics: Sequence[Topic] = HISTORY_TOPICS,
    counts: ReadCounts | None = None,
    batch: int = 20_000,
    since: datetime | None = None,
    follow: bool = False,
) -> AsyncIterator[list[Envelope]]:
    """Batches of decoded events, partition by partition order kept; bytes that are not a
    Shoal event are counted in `counts.undecodable` and skipped. With `since`, reading
    starts at the first record Kafka stamped at or after it. With `follow`, it does not
    stop at the end but goes on with what arrives (until the caller stops iterating)."""
    counts = counts or ReadCounts()
    names = [topic.name(settings.namespace) for topic in topics]
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        request_timeout_ms=int(settings.connect_timeout_s * 1000) + 30_000,
    )
    try:
        await consumer.start()
        partitions = await partitions_of(settings, names)
        assignment = [TopicPartition(name, p) for name in names for p in partitions[name]]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        ends = await consumer.end_offsets(assignment)
        starts = await consumer.beginning_offsets(assignment)
        if since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in assignment}
            )
            for tp in assignment:
                at = found.get(tp)
                starts[tp] = at.offset if at is not None else ends[tp]
                consumer.seek(tp, starts[tp])
    except KafkaError as exc:
        await consumer.stop()
        raise BusUnavailable(f"could not read the history from Kafka: {exc!r}") from exc
    remaining = {tp for tp in assignment if ends[tp] > starts[tp]}
    try:
        while remaining or follow:
            fetched = await consumer.getmany(
                *(assignment if follow else remaining), timeout_ms=1000, max_records=batch
            )
            out: list[Envelope] = []
            for tp, records in fetched.items():
                end = None if follow else ends[tp]
                for record in records:
                    if end is not None and record.offset >= end:
                        break
                    try:
                        out.append(decode(record.key, record.value, record.headers))
                    except DecodeError:
                        counts.undecodable += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if out:
                counts.events += len(out)
                yield out
    finally:
        await consumer.stop()


async def read_all(
    settings: BusSettings,
    topics: Sequence[Topic] = HISTORY_TOPICS,
    counts: ReadCounts | None = None,
    since: datetime | None = None,
) -> list[Envelope]:
    events: list[Envelope] = []
    async for batch in read_batches(settings, topics, counts, since=since):
        events.extend(batch)
    return events
