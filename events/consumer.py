"""The live consumer: follows topics and hands each event to a handler, at least once.

It starts either where a consumer group committed (and then commits after each handled
batch) or at given offsets (where a history read ended). A message that does not decode,
or whose handler keeps raising, goes to the dead-letter topic; the consumer carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from events.topics import HOMES, Topic, is_home

log = logging.getLogger("shoal.bus")

Handler = Callable[[Envelope], Awaitable[None]]
HANDLER_ATTEMPTS = 3
LAG_EVERY_S = 1.0
FETCH_GRACE_S = 30.0
"""A fetch may wait out a group join (a dead member's session); longer than this, the
broker is away and the loop polls again rather than hang."""
FETCH_BOUND_S = 2.0
"""How long a lag reading may wait for the broker."""
STALL_S = 20.0
"""Records waiting but none delivered for this long: the consumer is stuck (aiokafka can
stall after a broker restart) and is started again at its positions."""


MAX_FUTURE_S = 300.0
"""An event dated further than this after it was written is refused: no clock of a sane
cluster is that far off, and such a date would outlive every timeout."""
LOG_APPEND_TIME = 1
"""A record's timestamp type when the broker stamped it."""


def decoded(record: ConsumerRecord[bytes, bytes]) -> Envelope | str:
    """The record's event, or why it is not one. Never raises: whatever the bytes. Refused:
    an event on a topic that is not one of its type's homes (the broker lets only the roles
    declared on a topic write it, so its author's role may not say it), and one dated more
    than MAX_FUTURE_S after the broker appended it (or, on a topic whose records carry their
    writers' times, after now)."""
    appended = record.timestamp / 1000 if record.timestamp_type == LOG_APPEND_TIME else None
    try:
        envelope = decode(record.key, record.value, record.headers, appended=appended)
    except DecodeError as exc:
        return f"undecodable: {exc}"
    except Exception as exc:  # deep nesting and the like: refused, never fatal
        return f"undecodable: {type(exc).__name__}: {exc}"
    if not is_home(type(envelope.data), record.topic):
        homes = " or ".join(topic.suffix for topic in HOMES[type(envelope.data)])
        return f"a {envelope.type} belongs on the {homes} topic, not on {record.topic}"
    reference = appended if appended is not None else time.time()
    ahead = envelope.time.timestamp() - reference
    if ahead > MAX_FUTURE_S:
        return f"dated {ahead:.0f} s after it was written ({envelope.time.isoformat()})"
    return envelope


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
        self.last_delivery = time.monotonic()
        self.lag = 0
        self._lag_observed_at = float("-inf")
        self._consumer = self._new_consumer()
        self._started = False

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **self.settings.client_kwargs(),
            group_id=self.group_id,
            client_id=f"shoal-{self.name}",
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
            else:
                self._consumer.assign(list(self.start_at))
                for tp, offset in self.start_at.items():
                    self._consumer.seek(tp, offset)
            self._started = True
        except KafkaError as exc:
            raise BusUnavailable(f"consumer {self.name}: Kafka unreachable: {exc!r}") from exc

    async def stop(self) -> None:
        await self._consumer.stop()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """Where the assigned partitions end now, by asking the broker."""
        return dict(await self._consumer.end_offsets(list(self._consumer.assignment())))

    def known_ends(self, within_s: float) -> dict[TopicPartition, int] | None:
        """Where the partitions ended as of the last fetch responses (no round trip to the
        broker, where a request waits behind a fetch parked for new records), if each came
        within `within_s`; None when one did not."""
        now_ms = time.time() * 1000
        ends = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            at = self._consumer.last_poll_timestamp(tp)
            if highwater is None or at is None or now_ms - at > within_s * 1000:
                return None
            ends[tp] = highwater
        return ends

    async def reached(self, target: Mapping[TopicPartition, int]) -> bool:
        """Whether everything up to `target` was handed to the handler."""
        for tp, end in target.items():
            if tp in self._consumer.assignment() and await self._consumer.position(tp) < end:
                return False
        return True

    def stalled(self) -> bool:
        """Records wait (as of the last lag reading) and none came for STALL_S."""
        return self.lag > 0 and time.monotonic() - self.last_delivery > STALL_S

    async def restart(self) -> None:
        """Start a new Kafka consumer where this one stands (or where its group committed)."""
        if self.group_id is None:
            assignment = list(self._consumer.assignment())
            self.start_at = {tp: await self._consumer.position(tp) for tp in assignment}
        self._started = False
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        self._consumer = self._new_consumer()
        self.last_delivery = time.monotonic()
        self.lag = 0
        await self.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Start, then handle events until `stop` is set; always stops the Kafka consumer."""
        await self.start()
        try:
            while not stop.is_set():
                await self.poll_once()
        finally:
            await self.stop()

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Fetch one batch, handle it, commit it; returns how many records it held. A
        consumer whose (re)start failed is started first."""
        if not self._started:
            await self.start()
        batches = await self._fetch(timeout_ms)
        handled = 0
        for tp, records in batches.items():
            for record in records:
                await self._deliver(record)
            handled += len(records)
            metrics.EVENTS_CONSUMED.labels(self.name, tp.topic).inc(len(records))
        if handled and self.group_id is not None:
            await self._commit()
        self.last_progress = time.monotonic()
        if handled:
            self.last_delivery = self.last_progress
        await self._observe_lag()
        return handled

    async def _fetch(
        self, timeout_ms: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """One bounded fetch: a group join or an absent broker may hold it; then nothing came."""
        try:
            return await asyncio.wait_for(
                self._consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_batch),
                timeout_ms / 1000 + FETCH_GRACE_S,
            )
        except TimeoutError:
            log.warning(
                "fetch held past its bound (group join or broker away); polling again",
                extra={"fields": {"consumer": self.name}},
            )
            return {}

    async def _ends_if_quiet(self, now: float) -> dict[TopicPartition, int]:
        """After a quiet spell, where the partitions end, from the broker: a stuck consumer
        fetches nothing, so its own high-water marks would never show the records waiting."""
        if now - self.last_delivery < STALL_S / 2:
            return {}
        try:
            return await asyncio.wait_for(self.end_offsets(), FETCH_BOUND_S)
        except Exception:
            return {}

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
        ends = await self._ends_if_quiet(now)
        total = 0
        for tp in self._consumer.assignment():
            highwater = ends.get(tp, self._consumer.highwater(tp))
            if highwater is not None:
                try:
                    position = await asyncio.wait_for(self._consumer.position(tp), FETCH_BOUND_S)
                except (TimeoutError, KafkaError):
                    return
                behind = max(0, highwater - position)
                total += behind
                metrics.CONSUMER_LAG.labels(self.name, tp.topic).set(behind)
        self.lag = total
