"""The CloudEvents 1.0 envelope, carried in the CloudEvents Kafka protocol binding.

Shoal writes structured content mode: the message value is the whole event as one JSON
object (attributes and `data`), the one header is `content-type:
application/cloudevents+json`, and the message key is the partition key (the binding's
`partitionkey`; it equals `subject`, the function or node the event is about). Binary mode
(`ce_*` headers, value = data) costs about 40% of broker throughput for its eight headers
(bench/bus.py measured it), so Shoal only reads it, for events written by other tools.

Shoal's own extension attributes: `schemaversion` of the payload ("major.minor") and
`causationid`, the id of the event that caused this one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Union

import msgspec

from events.errors import DecodeError, SchemaVersionMismatch, UnknownEventType
from events.types import ALL_PAYLOADS, PAYLOAD_BY_TYPE, Payload

SPECVERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
Headers = Sequence[tuple[str, bytes]]

# A list, as aiokafka's record builder requires; shared by every message and never changed.
_STRUCTURED_HEADERS: list[tuple[str, bytes]] = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
_BINARY_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")


class Envelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    specversion: str
    id: str
    source: str
    type: str
    time: datetime
    subject: str
    datacontenttype: str
    schemaversion: str
    data: Payload
    causationid: str | None = None
    appended: float | None = None
    """When the broker appended it (epoch seconds), where the topic says so; never read
    from the event itself, which any writer may date as it likes."""


class _WireEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event as read: attributes checked, `data` kept raw until its type is known."""

    specversion: str
    id: str
    source: str
    type: str
    time: datetime | None = None
    subject: str | None = None
    datacontenttype: str = DATA_CONTENT_TYPE
    schemaversion: str | None = None
    causationid: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")


def _typed_wire_event(payload_type: type[Payload]) -> type[msgspec.Struct]:
    """A wire event whose `type` tags it and whose `data` is decoded as the payload."""
    return msgspec.defstruct(
        f"Wire{payload_type.__name__}",
        [
            ("specversion", str),
            ("id", str),
            ("source", str),
            ("time", datetime | None, None),
            ("subject", str | None, None),
            ("datacontenttype", str, DATA_CONTENT_TYPE),
            ("schemaversion", str | None, None),
            ("causationid", str | None, None),
            ("data", payload_type),
        ],
        kw_only=True,
        tag_field="type",
        tag=payload_type.TYPE,
    )


_encoder = msgspec.json.Encoder()
_wire_decoder = msgspec.json.Decoder(_WireEvent)
# One pass over the JSON for a well-formed event; the two-step path explains the rest.
_one_pass_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    Union[tuple(_typed_wire_event(p) for p in ALL_PAYLOADS)]  # noqa: UP007
)
_data_decoders: dict[type[Payload], msgspec.json.Decoder[Payload]] = {}


def new_envelope(
    payload: Payload, *, source: str, causation_id: str | None = None, at: datetime | None = None
) -> Envelope:
    """Wrap a payload with a fresh id and the time it was made (now unless given)."""
    return Envelope(
        specversion=SPECVERSION,
        datacontenttype=DATA_CONTENT_TYPE,
        id=os.urandom(16).hex(),
        source=source,
        type=payload.TYPE,
        time=at or datetime.now(UTC),
        subject=payload.key,
        data=payload,
        schemaversion=payload.SCHEMA,
        causationid=causation_id,
    )


def encode(envelope: Envelope) -> tuple[bytes, bytes, Headers]:
    """Envelope -> (key, value, headers) in CloudEvents Kafka structured mode."""
    return envelope.subject.encode(), _encoder.encode(envelope), _STRUCTURED_HEADERS


def decode(
    key: bytes | None, value: bytes | None, headers: Headers, *, appended: float | None = None
) -> Envelope:
    """(key, value, headers) -> a validated Envelope, or DecodeError saying what is wrong."""
    for name, raw in headers:
        if name == "content-type" or name.lower() == "content-type":
            if raw.startswith(b"application/cloudevents"):
                return _from_structured(value, appended)
            break
    if any(name == "ce_specversion" for name, _ in headers):
        return _from_binary(key, value, headers, appended)
    raise DecodeError(
        "not a CloudEvent: no content-type application/cloudevents+json and "
        "missing headers ce_specversion, ce_id, ce_source, ce_type"
    )


def _from_structured(value: bytes | None, appended: float | None) -> Envelope:
    if not value:
        raise DecodeError("structured CloudEvent with an empty value")
    try:
        return _checked(_one_pass_decoder.decode(value), appended)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        wire = _wire_decoder.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(f"not a valid structured CloudEvent: {exc}") from exc
    return _validated(wire, appended)


def _from_binary(
    key: bytes | None, value: bytes | None, headers: Headers, appended: float | None
) -> Envelope:
    try:
        attrs = {name: raw.decode() for name, raw in headers}
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a header is not UTF-8: {exc}") from exc
    missing = [name for name in _BINARY_REQUIRED if name not in attrs]
    if missing:
        raise DecodeError(f"not a CloudEvent: missing headers {', '.join(missing)}")
    try:
        time = datetime.fromisoformat(attrs["ce_time"]) if "ce_time" in attrs else None
    except ValueError as exc:
        raise DecodeError(f"ce_time is not RFC 3339: {attrs['ce_time']!r}") from exc
    subject = attrs.get("ce_subject") or (key.decode(errors="replace") if key else None)
    wire = _WireEvent(
        specversion=attrs["ce_specversion"],
        id=attrs["ce_id"],
        source=attrs["ce_source"],
        type=attrs["ce_type"],
        time=time,
        subject=subject,
        datacontenttype=attrs.get("content-type", DATA_CONTENT_TYPE),
        schemaversion=attrs.get("ce_schemaversion"),
        causationid=attrs.get("ce_causationid"),
        data=msgspec.Raw(value or b""),
    )
    return _validated(wire, appended)


def _data_decoder(payload_type: type[Payload]) -> msgspec.json.Decoder[Payload]:
    decoder = _data_decoders.get(payload_type)
    if decoder is None:
        decoder = _data_decoders[payload_type] = msgspec.json.Decoder(payload_type)
    return decoder


def _checked(wire: Any, appended: float | None) -> Envelope:
    """An event decoded in one pass: its data is typed already; check the attributes."""
    data: Payload = wire.data
    return _assembled(wire, data, _readable_version(wire, type(data)), appended)


def _validated(wire: _WireEvent, appended: float | None) -> Envelope:
    """An event decoded in two steps: check the attributes, then decode its data."""
    payload_type = PAYLOAD_BY_TYPE.get(wire.type)
    if payload_type is None:
        raise UnknownEventType(f"unknown event type {wire.type!r}")
    version = _readable_version(wire, payload_type)
    if not wire.data:
        raise DecodeError(f"{wire.type} has no data")
    try:
        data = _data_decoder(payload_type).decode(wire.data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(f"{wire.type} data is invalid: {exc}") from exc
    return _assembled(wire, data, version, appended)


def _readable_version(wire: Any, payload_type: type[Payload]) -> str:
    if wire.specversion != SPECVERSION:
        raise DecodeError(f"unsupported CloudEvents specversion {wire.specversion!r}")
    version: str = wire.schemaversion or payload_type.SCHEMA
    if version.split(".", 1)[0] != payload_type.SCHEMA.split(".", 1)[0]:
        raise SchemaVersionMismatch(
            f"{payload_type.TYPE} schema version {version} cannot be read by a "
            f"version {payload_type.SCHEMA} reader (major versions differ)"
        )
    return version


def _assembled(wire: Any, data: Payload, version: str, appended: float | None) -> Envelope:
    if wire.subject is not None and wire.subject != data.key:
        raise DecodeError(f"subject {wire.subject!r} does not match the payload's key {data.key!r}")
    if wire.time is not None and wire.time.utcoffset() is None:
        raise DecodeError(f"time {wire.time.isoformat()} has no UTC offset")
    return Envelope(
        specversion=SPECVERSION,
        id=wire.id,
        source=wire.source,
        type=data.TYPE,
        time=wire.time or datetime.fromtimestamp(0, UTC),
        subject=data.key,
        data=data,
        schemaversion=version,
        causationid=wire.causationid,
        datacontenttype=wire.datacontenttype,
        appended=appended,
    )
