"""The dead-letter path, which cannot fail: a message a consumer cannot use is copied to the
dead-letter topic with the reason, cut to fit, and the consumer carries on whatever
happens to the copy."""

from __future__ import annotations

import hashlib
import logging

from aiokafka import ConsumerRecord

from events import metrics
from events.bus import EventProducer
from events.envelope import Envelope, encode
from events.topics import DEAD_LETTER

log = logging.getLogger("shoal.bus")

MAX_COPY_BYTES = 64 * 1024
"""The most of a message's value kept in its dead-letter copy."""
MAX_REASON_CHARS = 500
MAX_HEADERS_BYTES = 16 * 1024
"""Original headers larger than this in all are left out of the copy."""


def bounded_reason(reason: str) -> str:
    """The reason cut to size, with anything unprintable escaped."""
    text = reason if reason.isprintable() else reason.encode("unicode_escape").decode("ascii")
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def dead_letter_copy(
    record: ConsumerRecord[bytes, bytes], reason: str, consumer: str
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of the copy: at most MAX_COPY_BYTES of the value, with its
    original size and hash, and the original headers when they are small."""
    value = record.value or b""
    original = list(record.headers or ())
    kept = original if sum(len(k) + len(v or b"") for k, v in original) <= MAX_HEADERS_BYTES else []
    headers = [
        *kept,
        ("shoal_dlq_reason", bounded_reason(reason).encode()),
        ("shoal_dlq_origin", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ("shoal_dlq_consumer", consumer[:200].encode()),
        ("shoal_dlq_size", str(len(value)).encode()),
        ("shoal_dlq_sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    if len(value) > MAX_COPY_BYTES:
        headers.append(("shoal_dlq_truncated", b"1"))
    if len(kept) < len(original):
        headers.append(("shoal_dlq_headers_dropped", str(len(original)).encode()))
    return value[:MAX_COPY_BYTES], headers


class DeadLetters:
    """Sends dead-letter copies for one consumer; `send` never raises."""

    def __init__(self, producer: EventProducer, *, consumer: str) -> None:
        self.producer = producer
        self.consumer = consumer

    async def send_event(self, envelope: Envelope, reason: str) -> None:
        """Dead-letter an event that decoded but could not be applied."""
        key, value, headers = encode(envelope)
        record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
            topic="(history)",
            partition=-1,
            offset=-1,
            timestamp=0,
            timestamp_type=0,
            key=key,
            value=value,
            checksum=None,
            serialized_key_size=len(key),
            serialized_value_size=len(value),
            headers=list(headers),
        )
        await self.send(record, reason)

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        metrics.DEAD_LETTERS.labels(self.consumer, record.topic).inc()
        where = {
            "consumer": self.consumer,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": bounded_reason(reason),
        }
        log.warning("dead-lettered a message", extra={"fields": where})
        value, headers = dead_letter_copy(record, reason, self.consumer)
        key = record.topic.encode()
        try:
            topic = DEAD_LETTER.name(self.producer.settings.namespace)
            await (await self.producer.send_raw(topic, key=key, value=value, headers=headers))
        except Exception as exc:  # the consumer goes on: the reason is in the log
            log.error(
                "could not dead-letter a message; skipped",
                extra={"fields": {**where, "error": bounded_reason(repr(exc))}},
            )
