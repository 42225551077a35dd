"""The history reader: every event some partitions held when the read began, in order per
partition. Services fold it to rebuild their state, then follow on from `ends` with a
live consumer; `shoal audit` and `shoal replay` read it whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from events.bus import partitions_of, until_reachable
from events.consumer import decoded
from events.envelope import Envelope
from events.errors import BusUnavailable
from events.settings import BusSettings
from events.topics import ALL_TOPICS, DEAD_LETTER, Topic

HISTORY_TOPICS: tuple[Topic, ...] = tuple(
    topic for topic in ALL_TOPICS if topic.history and topic is not DEAD_LETTER
)
METRIC_TOPICS: tuple[Topic, ...] = tuple(topic for topic in ALL_TOPICS if not topic.history)

Refused = Callable[[ConsumerRecord[bytes, bytes], str], Awaitable[None]]


@dataclass
class ReadCounts:
    events: int = 0
    undecodable: int = 0


class HistoryReader:
    """Reads partitions from their beginning (or from `since`, per topic) up to where they
    ended when `batches()` began. A record that is not a Shoal event is counted and given
    to `refused` (a service dead-letters it), never yielded."""

    def __init__(
        self,
        settings: BusSettings,
        *,
        topics: Sequence[Topic],
        partitions: Mapping[Topic, Sequence[int]] | None = None,
        since: Mapping[Topic, datetime] | None = None,
        refused: Refused | None = None,
        batch: int = 20_000,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.partitions = partitions
        self.since = dict(since or {})
        self.refused = refused
        self.batch = batch
        self.counts = ReadCounts()
        self.ends: dict[TopicPartition, int] = {}
        """Where each partition ended: a live consumer starts there."""
        self._consumer = AIOKafkaConsumer(
            **settings.client_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            request_timeout_ms=int(settings.connect_timeout_s * 1000) + 30_000,
        )

    async def batches(self) -> AsyncIterator[list[Envelope]]:
        """Decoded events in batches, until every partition is read to its end."""
        try:
            remaining = await self._open()
        except KafkaError as exc:
            await self._consumer.stop()
            raise BusUnavailable(f"could not read the history from Kafka: {exc!r}") from exc
        try:
            while remaining:
                fetched = await self._consumer.getmany(
                    *remaining, timeout_ms=1000, max_records=self.batch
                )
                out = await self._decoded(fetched)
                for tp in list(remaining):
                    if await self._consumer.position(tp) >= self.ends[tp]:
                        remaining.discard(tp)
                if out:
                    self.counts.events += len(out)
                    yield out
        finally:
            await self._consumer.stop()

    async def _open(self) -> set[TopicPartition]:
        async for attempt in until_reachable(self.settings):
            with attempt:
                await self._consumer.start()
        assignment = await self._assignment()
        self._consumer.assign(assignment)
        await self._consumer.seek_to_beginning(*assignment)
        self.ends = await self._consumer.end_offsets(assignment)
        starts = await self._consumer.beginning_offsets(assignment)
        starts.update(await self._starts_since(assignment))
        for tp, offset in starts.items():
            self._consumer.seek(tp, offset)
        return {tp for tp in assignment if self.ends[tp] > starts[tp]}

    async def _assignment(self) -> list[TopicPartition]:
        ns = self.settings.namespace
        if self.partitions is not None:
            return [
                TopicPartition(topic.name(ns), p)
                for topic, numbers in self.partitions.items()
                for p in numbers
            ]
        names = [topic.name(ns) for topic in self.topics]
        found = await partitions_of(self.settings, names)
        return [TopicPartition(name, p) for name in names for p in found[name]]

    async def _starts_since(self, assignment: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Per partition of a topic read `since` a time: the first record stamped then."""
        ms = {
            topic.name(self.settings.namespace): int(t.timestamp() * 1000)
            for topic, t in self.since.items()
        }
        wanted = {tp: ms[tp.topic] for tp in assignment if tp.topic in ms}
        if not wanted:
            return {}
        found = await self._consumer.offsets_for_times(wanted)
        return {tp: (at.offset if at is not None else self.ends[tp]) for tp, at in found.items()}

    async def _decoded(
        self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> list[Envelope]:
        out: list[Envelope] = []
        for tp, records in fetched.items():
            end = self.ends[tp]
            for record in records:
                if record.offset >= end:
                    break
                envelope = decoded(record)
                if isinstance(envelope, Envelope):
                    out.append(envelope)
                    continue
                self.counts.undecodable += 1
                if self.refused is not None:
                    await self.refused(record, envelope)
        return out


async def read_all(
    settings: BusSettings,
    topics: Sequence[Topic] = HISTORY_TOPICS,
    counts: ReadCounts | None = None,
    since: datetime | None = None,
) -> list[Envelope]:
    """Every event of some topics (from `since`, when given), as `shoal audit` reads them."""
    reader = HistoryReader(
        settings, topics=topics, since=dict.fromkeys(topics, since) if since else None
    )
    events: list[Envelope] = []
    async for batch in reader.batches():
        events.extend(batch)
    if counts is not None:
        counts.events += reader.counts.events
        counts.undecodable += reader.counts.undecodable
    return events
