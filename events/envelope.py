"""The CloudEvents 1.0 envelope, carried in the CloudEvents Kafka protocol binding.

Binary content mode: the attributes travel as `ce_*` headers, `content-type` holds
`datacontenttype`, the message value is the JSON payload and the message key is the
partition key (the CloudEvents `partitionkey` extension, also sent as `subject`).
Shoal's own extensions: `schemaversion` of the payload and `causationid`, the id of the
event that caused this one (so a decision traces back to its inputs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from events.errors import DecodeError, SchemaVersionMismatch, UnknownEventType
from events.types import PAYLOAD_BY_TYPE, Payload

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
Headers = list[tuple[str, bytes]]

_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")
_encoder = msgspec.json.Encoder()
_decoders: dict[type[Payload], msgspec.json.Decoder[Payload]] = {}


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    time: datetime
    subject: str
    data: Payload
    schemaversion: str
    causationid: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = CONTENT_TYPE


def new_envelope(payload: Payload, *, source: str, causation_id: str | None = None,
                 at: datetime | None = None) -> Envelope:
    """Wrap a payload with a fresh id and the time it was made (now unless given)."""
    return Envelope(
        id=uuid.uuid4().hex,
        source=source,
        type=payload.TYPE,
        time=at or datetime.now(UTC),
        subject=payload.key,
        data=payload,
        schemaversion=payload.SCHEMA,
        causationid=causation_id,
    )


def encode(envelope: Envelope) -> tuple[bytes, bytes, Headers]:
    """Envelope -> (key, value, headers) in CloudEvents Kafka binary mode."""
    headers: Headers = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", envelope.id.encode()),
        ("ce_source", envelope.source.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_time", envelope.time.isoformat().encode()),
        ("ce_subject", envelope.subject.encode()),
        ("ce_partitionkey", envelope.subject.encode()),
        ("ce_schemaversion", envelope.schemaversion.encode()),
        ("content-type", envelope.datacontenttype.encode()),
    ]
    if envelope.causationid:
        headers.append(("ce_causationid", envelope.causationid.encode()))
    return envelope.subject.encode(), _encoder.encode(envelope.data), headers


def _decoder_for(payload_type: type[Payload]) -> msgspec.json.Decoder[Payload]:
    decoder = _decoders.get(payload_type)
    if decoder is None:
        decoder = _decoders[payload_type] = msgspec.json.Decoder(payload_type)
    return decoder


def decode(key: bytes | None, value: bytes | None, headers: Headers) -> Envelope:
    """(key, value, headers) -> a validated Envelope, or DecodeError saying what is wrong."""
    try:
        attrs = {name: raw.decode() for name, raw in headers}
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a header is not UTF-8: {exc}") from exc
    missing = [name for name in _REQUIRED if name not in attrs]
    if missing:
        raise DecodeError(f"not a CloudEvent: missing headers {', '.join(missing)}")
    if attrs["ce_specversion"] != SPECVERSION:
        raise DecodeError(f"unsupported CloudEvents specversion {attrs['ce_specversion']!r}")
    event_type = attrs["ce_type"]
    payload_type = PAYLOAD_BY_TYPE.get(event_type)
    if payload_type is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    version = attrs.get("ce_schemaversion", payload_type.SCHEMA)
    if version.split(".", 1)[0] != payload_type.SCHEMA.split(".", 1)[0]:
        raise SchemaVersionMismatch(
            f"{event_type} schema version {version} cannot be read by a "
            f"version {payload_type.SCHEMA} reader (major versions differ)"
        )
    if value is None:
        raise DecodeError(f"{event_type} has no data")
    try:
        data = _decoder_for(payload_type).decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(f"{event_type} data is invalid: {exc}") from exc
    try:
        time = datetime.fromisoformat(attrs["ce_time"]) if "ce_time" in attrs else None
    except ValueError as exc:
        raise DecodeError(f"ce_time is not RFC 3339: {attrs['ce_time']!r}") from exc
    subject = attrs.get("ce_subject") or (key.decode(errors="replace") if key else "")
    if subject != data.key:
        raise DecodeError(f"subject {subject!r} does not match the payload's key {data.key!r}")
    return Envelope(
        id=attrs["ce_id"],
        source=attrs["ce_source"],
        type=event_type,
        time=time or datetime.fromtimestamp(0, UTC),
        subject=subject,
        data=data,
        schemaversion=version,
        causationid=attrs.get("ce_causationid"),
        datacontenttype=attrs.get("content-type", CONTENT_TYPE),
    )
