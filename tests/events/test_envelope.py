"""The envelope and the CloudEvents Kafka binding, without a broker."""

from __future__ import annotations

import json

import msgspec
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from events.envelope import decode, encode, new_envelope
from events.errors import DecodeError, SchemaVersionMismatch, UnknownEventType
from events.topics import HOMES
from events.types import ALL_PAYLOADS, NodeDrained, ReplicaReady
from tests.events.samples import REPLICA, sample_payloads

SOURCE = "/shoal/test/1"


def test_every_event_type_has_a_sample_and_a_topic() -> None:
    assert {type(p) for p in sample_payloads()} == set(ALL_PAYLOADS)
    assert set(HOMES) == set(ALL_PAYLOADS)
    assert len({p.TYPE for p in ALL_PAYLOADS}) == len(ALL_PAYLOADS)


@pytest.mark.parametrize("payload", sample_payloads(), ids=lambda p: type(p).__name__)
def test_every_event_type_survives_encode_then_decode(payload: object) -> None:
    envelope = new_envelope(payload, source=SOURCE, causation_id="cause-1")  # type: ignore[arg-type]
    decoded = decode(*encode(envelope))
    assert decoded == envelope


@pytest.mark.parametrize("payload", sample_payloads(), ids=lambda p: type(p).__name__)
def test_a_stock_cloudevents_reader_understands_every_event(payload: object) -> None:
    envelope = new_envelope(payload, source=SOURCE, causation_id="cause-1")  # type: ignore[arg-type]
    key, value, headers = encode(envelope)
    event = from_kafka_event(KafkaMessage(headers=dict(headers), key=key, value=value))
    assert event.get_id() == envelope.id
    assert event.get_type() == envelope.type
    assert event.get_source() == SOURCE
    assert event.get_subject() == envelope.subject
    assert event.get_extension("causationid") == "cause-1"
    data = event.get_data()
    as_dict = json.loads(data) if isinstance(data, bytes | str) else data
    assert as_dict == msgspec.to_builtins(payload)


def _ready_message(
    data: dict[str, object], **attribute_overrides: str
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A structured-mode ReplicaReady message whose data and attributes a test can spoil."""
    envelope = new_envelope(ReplicaReady(**REPLICA, endpoint="http://127.0.0.1:1"), source=SOURCE)
    key, value, headers = encode(envelope)
    event = {**json.loads(value), **attribute_overrides, "data": data}
    return key, json.dumps(event).encode(), headers


def test_unknown_fields_from_a_newer_minor_version_are_tolerated() -> None:
    data = {**REPLICA, "endpoint": "http://127.0.0.1:1", "zone": "eu-1"}
    decoded = decode(*_ready_message(data, schemaversion="1.7"))
    assert isinstance(decoded.data, ReplicaReady)
    assert decoded.data.endpoint == "http://127.0.0.1:1"
    assert decoded.schemaversion == "1.7"


def test_a_different_major_schema_version_is_refused() -> None:
    data = {**REPLICA, "endpoint": "http://127.0.0.1:1"}
    with pytest.raises(SchemaVersionMismatch, match="major versions differ"):
        decode(*_ready_message(data, schemaversion="2.0"))


def test_a_missing_field_is_refused_with_its_name() -> None:
    with pytest.raises(DecodeError, match="endpoint"):
        decode(*_ready_message(dict(REPLICA)))


def test_a_wrongly_typed_field_is_refused_with_its_path() -> None:
    data = {**REPLICA, "endpoint": "http://x", "revision": "one"}
    with pytest.raises(DecodeError, match=r"revision"):
        decode(*_ready_message(data))


def test_a_value_out_of_range_is_refused() -> None:
    data = {**REPLICA, "endpoint": "http://x", "revision": 0}
    with pytest.raises(DecodeError, match=r">= 1"):
        decode(*_ready_message(data))


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownEventType, match=r"dev\.shoal\.nope"):
        decode(*_ready_message({}, type="dev.shoal.nope"))


def test_bytes_without_cloudevents_headers_are_refused() -> None:
    with pytest.raises(DecodeError, match="not a CloudEvent"):
        decode(b"k", b"\x00\xff garbage", [])


def test_malformed_json_is_refused() -> None:
    key, _, headers = _ready_message({})
    with pytest.raises(DecodeError, match="not a valid structured CloudEvent"):
        decode(key, b"{not json", headers)


def test_a_subject_that_disagrees_with_the_payload_key_is_refused() -> None:
    data = {**REPLICA, "endpoint": "http://x"}
    with pytest.raises(DecodeError, match="does not match"):
        decode(*_ready_message(data, subject="other"))


def test_the_partition_key_is_the_function_or_the_node() -> None:
    ready = ReplicaReady(**REPLICA, endpoint="http://x")
    assert encode(new_envelope(ready, source=SOURCE))[0] == b"hello"
    assert encode(new_envelope(NodeDrained(node="n7"), source=SOURCE))[0] == b"n7"


def _stock_event(payload: ReplicaReady) -> CloudEvent:
    return CloudEvent(
        attributes={
            "id": "stock-1",
            "source": "/other-tool",
            "type": payload.TYPE,
            "specversion": "1.0",
            "subject": payload.key,
            "datacontenttype": "application/json",
            "schemaversion": "1.0",
        },
        data=msgspec.to_builtins(payload),
    )


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_events_written_by_a_stock_cloudevents_writer_are_read_in_either_mode(mode: str) -> None:
    payload = ReplicaReady(**REPLICA, endpoint="http://127.0.0.1:2")
    writer = to_binary if mode == "binary" else to_structured
    message = writer(_stock_event(payload), JSONFormat(), key_mapper=lambda e: e.get_subject())
    key = message.key if isinstance(message.key, bytes) else str(message.key).encode()
    decoded = decode(key, message.value, list(message.headers.items()))
    assert decoded.id == "stock-1"
    assert decoded.source == "/other-tool"
    assert decoded.data == payload


def test_a_binary_mode_event_missing_required_headers_is_refused() -> None:
    with pytest.raises(DecodeError, match="missing headers ce_id, ce_source, ce_type"):
        decode(b"k", b"{}", [("ce_specversion", b"1.0")])
