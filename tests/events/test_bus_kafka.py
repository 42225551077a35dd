"""The bus against the real Kafka broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event

from events.bus import EventProducer, ensure_topics
from events.consumer import MAX_FUTURE_S, LiveConsumer, from_beginning
from events.credentials import Credentials, write_credentials
from events.envelope import Envelope, encode, new_envelope
from events.errors import BusUnavailable
from events.projections.world import World
from events.settings import BusSettings
from events.topics import ALL_TOPICS, DEAD_LETTER, REPLICAS, partition_for, topic_of
from events.types import ReplicaReady
from services.local.credentials import ADMIN
from services.local.kafka_broker import LocalKafkaBroker
from tests.events.samples import sample_payloads
from tests.support.kafka_io import collect, raw_records
from tests.support.kcat import kcat_list, partition_counts

pytestmark = pytest.mark.kafka


def ready(n: int, function: str = "hello") -> ReplicaReady:
    return ReplicaReady(
        function=function,
        revision=1,
        replica_id=f"{function}-r{n}",
        node="n1",
        endpoint=f"http://127.0.0.1:{20000 + n}",
    )


@pytest.fixture
async def producer(bus: BusSettings) -> EventProducer:
    producer = EventProducer(bus, source="/shoal/test/producer")
    await producer.start()
    yield producer  # type: ignore[misc]
    await producer.stop()


async def test_every_event_type_round_trips_through_kafka(
    bus: BusSettings, producer: EventProducer
) -> None:
    sent = [await producer.publish(p, causation_id="c-1") for p in sample_payloads()]
    topics = sorted({topic_of(type(p)) for p in sample_payloads()}, key=lambda t: t.suffix)
    received = await collect(bus, topics, len(sent))
    assert all(e.appended is not None for e in received)
    as_sent = {e.id: msgspec.structs.replace(e, appended=None) for e in received}
    assert as_sent == {e.id: e for e in sent}


async def test_a_stock_cloudevents_parser_reads_what_we_write_to_kafka(
    bus: BusSettings, producer: EventProducer
) -> None:
    sent = await producer.publish(ready(1), causation_id="c-9")
    (record,) = await raw_records(bus, REPLICAS, 1)
    assert record.key is not None and record.value is not None
    event = from_kafka_event(
        KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    )
    assert event.get_id() == sent.id
    assert event.get_type() == "dev.shoal.replica.ready"
    assert event.get_subject() == "hello"
    assert event.get_extension("causationid") == "c-9"
    data = event.get_data()
    assert (json.loads(data) if isinstance(data, bytes | str) else data)[
        "endpoint"
    ] == "http://127.0.0.1:20001"


async def test_events_of_one_key_arrive_in_the_order_they_were_published(
    bus: BusSettings, producer: EventProducer
) -> None:
    functions = ["a", "b", "c", "d", "e"]
    futures = [
        await producer.send(producer.envelope(ready(n, functions[n % 5]))) for n in range(300)
    ]
    await asyncio.gather(*futures)
    received = await collect(bus, [REPLICAS], 300)
    by_key: dict[str, list[int]] = defaultdict(list)
    for envelope in received:
        assert isinstance(envelope.data, ReplicaReady)
        by_key[envelope.subject].append(int(envelope.data.replica_id.rsplit("-r", 1)[1]))
    assert set(by_key) == set(functions)
    for key, numbers in by_key.items():
        assert numbers == sorted(numbers), f"key {key} out of order"
        assert len(numbers) == 60


async def test_topics_are_created_with_their_partitions_and_retention(
    bus: BusSettings,
) -> None:
    found = await partition_counts(bus)
    for topic in ALL_TOPICS:
        assert found[topic.name(bus.namespace)] == topic.partitions
    configs = await described_configs(bus, [t.name(bus.namespace) for t in ALL_TOPICS])
    assert {c["message.timestamp.type"] for c in configs.values()} == {"LogAppendTime"}


async def described_configs(bus: BusSettings, names: list[str]) -> dict[str, dict[str, str]]:
    """The topics' configs, once the broker knows every topic (a new one may take a moment)."""
    admin = AIOKafkaAdminClient(**bus.client_kwargs())
    await admin.start()
    try:
        for _ in range(50):
            resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
            (response,) = await admin.describe_configs(resources)
            found = {r[3]: {entry[0]: entry[1] for entry in r[4]} for r in response.resources}
            if all(found.get(name) for name in names):
                return found
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise AssertionError(f"the broker did not describe {names}: {response}")


async def test_a_topic_an_older_shoal_made_is_given_broker_times(
    kafka_broker: LocalKafkaBroker,
) -> None:
    bus = BusSettings(
        bootstrap_servers=kafka_broker.layout.bootstrap, namespace="old" + uuid.uuid4().hex[:6]
    ).signed_in(kafka_broker.credentials(ADMIN))
    name = REPLICAS.name(bus.namespace)
    admin = AIOKafkaAdminClient(**bus.client_kwargs())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    REPLICAS.partitions,
                    1,
                    topic_configs={"message.timestamp.type": "CreateTime"},
                )
            ]
        )
    finally:
        await admin.close()
    assert (await described_configs(bus, [name]))[name]["message.timestamp.type"] == "CreateTime"
    await ensure_topics(bus, [REPLICAS])
    configs = (await described_configs(bus, [name]))[name]
    assert configs["message.timestamp.type"] == "LogAppendTime"
    assert configs["retention.ms"] == str(REPLICAS.retention_ms)


async def test_an_event_is_dated_by_the_broker_and_one_dated_far_after_is_refused(
    bus: BusSettings, producer: EventProducer
) -> None:
    now = datetime.now(UTC)
    early = new_envelope(ready(1), source="/t", at=now - timedelta(days=3))
    forged = new_envelope(ready(2), source="/t", at=now + timedelta(seconds=MAX_FUTURE_S + 60))
    fine = new_envelope(ready(3), source="/t")
    for envelope in (early, forged, fine):
        await (await producer.send(envelope))
    handled = await collect(bus, [REPLICAS], 2)
    assert [e.id for e in handled] == [early.id, fine.id]
    assert handled[0].appended is not None and abs(handled[0].appended - now.timestamp()) < 30
    (dead,) = await raw_records(bus, DEAD_LETTER, 1)
    assert "after it was written" in dict(dead.headers)["shoal_dlq_reason"].decode()


async def test_bad_messages_go_to_the_dead_letter_topic_and_the_next_good_one_is_handled(
    bus: BusSettings, producer: EventProducer
) -> None:
    topic = REPLICAS.name(bus.namespace)
    good = new_envelope(ready(1), source="/t")
    key, value, headers = encode(good)
    newer_major = value.replace(b'"schemaversion":"1.1"', b'"schemaversion":"2.0"')
    missing_field = value.replace(b'"endpoint":', b'"endpoint_":')
    raw = AIOKafkaProducer(**bus.client_kwargs())
    await raw.start()
    try:
        await raw.send_and_wait(topic, key=b"hello", value=b"\x00\x01 not an event", headers=[])
        await raw.send_and_wait(topic, key=key, value=newer_major, headers=headers)
        await raw.send_and_wait(topic, key=key, value=missing_field, headers=headers)
        await raw.send_and_wait(topic, key=key, value=value, headers=headers)
    finally:
        await raw.stop()

    handled = await collect(bus, [REPLICAS], 1)
    assert [e.id for e in handled] == [good.id]
    dead = await raw_records(bus, DEAD_LETTER, 3)
    reasons = [dict(r.headers)["shoal_dlq_reason"].decode() for r in dead]
    assert "not a CloudEvent" in reasons[0]
    assert "major versions differ" in reasons[1]
    assert "missing required field" in reasons[2]
    assert dead[0].value == b"\x00\x01 not an event"
    partition = partition_for("hello", REPLICAS.partitions)
    assert dict(dead[1].headers)["shoal_dlq_origin"].decode() == f"{topic}/{partition}/1"


async def test_a_handler_that_keeps_failing_dead_letters_its_event_and_the_consumer_goes_on(
    bus: BusSettings, producer: EventProducer
) -> None:
    poison, fine = await producer.publish(ready(1)), await producer.publish(ready(2))
    handled: list[str] = []
    stop = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        if envelope.id == poison.id:
            raise RuntimeError("cannot apply")
        handled.append(envelope.id)
        stop.set()

    consumer = LiveConsumer(
        bus,
        name="t",
        topics=[REPLICAS],
        handler=handler,
        dead_letters=producer,
        start_at=await from_beginning(bus, [REPLICAS]),
    )
    await asyncio.wait_for(consumer.run(stop), 30)
    assert handled == [fine.id]
    (dead,) = await raw_records(bus, DEAD_LETTER, 1)
    assert "handler failed 3 times" in dict(dead.headers)["shoal_dlq_reason"].decode()


async def test_a_redelivered_event_is_applied_once(
    bus: BusSettings, producer: EventProducer
) -> None:
    envelope = producer.envelope(ready(1))
    await (await producer.send(envelope))
    await (await producer.send(envelope))
    marker = await producer.publish(ready(2))
    applied: list[str] = []
    stop = asyncio.Event()

    world = World()

    async def apply(e: Envelope) -> None:
        if world.apply(e, 0.0) is not None:
            applied.append(e.id)
        if e.id == marker.id:
            stop.set()

    consumer = LiveConsumer(
        bus,
        name="t",
        topics=[REPLICAS],
        handler=apply,
        dead_letters=producer,
        start_at=await from_beginning(bus, [REPLICAS]),
    )
    await asyncio.wait_for(consumer.run(stop), 30)
    assert applied == [envelope.id, marker.id]


def run_consumer_process(
    bus: BusSettings, out: Path, **flags: int
) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "tests.support.consumer_process",
        "--bootstrap",
        bus.bootstrap_servers,
        "--namespace",
        bus.namespace,
        "--group",
        "g1",
        "--out",
        str(out),
    ]
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    env = {**os.environ, **bus.env()}
    return subprocess.run(args, capture_output=True, text=True, timeout=90, env=env)


async def test_a_consumer_killed_mid_batch_loses_nothing_when_its_successor_resumes(
    bus: BusSettings, producer: EventProducer, tmp_path: Path
) -> None:
    futures = [await producer.send(producer.envelope(ready(n, f"f{n % 7}"))) for n in range(400)]
    await asyncio.gather(*futures)
    published = {e.id for e in await collect(bus, [REPLICAS], 400)}
    out = tmp_path / "delivered.txt"

    killed = await asyncio.to_thread(run_consumer_process, bus, out, kill_after=150)
    assert killed.returncode == -9, killed.stderr
    first_run = out.read_text().split()
    assert len(first_run) == 150

    resumed = await asyncio.to_thread(run_consumer_process, bus, out, expect=400 - 0)
    delivered = out.read_text().split()
    assert resumed.returncode == 0 or set(delivered) == published, resumed.stderr
    assert set(delivered) == published
    assert len(delivered) > len(published), "the uncommitted part of the batch is redelivered"


async def test_producer_and_consumer_ride_out_a_broker_restart(
    own_broker: LocalKafkaBroker, own_bus: BusSettings
) -> None:
    bus = own_bus
    producer = EventProducer(bus, source="/shoal/test/producer")
    await producer.start()
    try:
        await ride_out_a_restart(own_broker, bus, producer)
    finally:
        await producer.stop()


async def ride_out_a_restart(
    broker: LocalKafkaBroker, bus: BusSettings, producer: EventProducer
) -> None:
    acknowledged: set[str] = set()
    received: set[str] = set()
    stop = asyncio.Event()

    async def keep(envelope: Envelope) -> None:
        received.add(envelope.id)

    consumer = LiveConsumer(
        bus,
        name="restart",
        topics=[REPLICAS],
        handler=keep,
        dead_letters=producer,
        group_id="restart",
    )
    consumer_task = asyncio.create_task(consumer.run(stop))

    sixty_acknowledged = asyncio.Event()

    async def publish_steadily() -> None:
        for n in range(250):
            acknowledged.add((await producer.publish(ready(n, f"f{n % 3}"))).id)
            if len(acknowledged) == 60:
                sixty_acknowledged.set()
            await asyncio.sleep(0.01)

    publisher = asyncio.create_task(publish_steadily())
    await asyncio.wait_for(sixty_acknowledged.wait(), 30)
    await asyncio.to_thread(broker.stop)
    await asyncio.sleep(3)
    await asyncio.to_thread(broker.start)
    await asyncio.wait_for(publisher, 90)
    for _ in range(600):
        if received >= acknowledged or consumer_task.done():
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(consumer_task, 30)
    assert len(acknowledged) == 250
    assert acknowledged - received == set()


async def test_a_client_without_credentials_or_with_wrong_ones_cannot_connect(
    kafka_broker: LocalKafkaBroker, bus: BusSettings, tmp_path: Path
) -> None:
    anonymous = await asyncio.to_thread(kcat_list, kafka_broker.layout.bootstrap, None, tmp_path)
    assert anonymous.returncode != 0 and "topic" not in anonymous.stdout
    wrong = tmp_path / "wrong.credentials"
    write_credentials(wrong, Credentials("admin", "not-the-password"))
    impostor = replace(bus.signed_in(wrong), connect_timeout_s=5.0)
    with pytest.raises(BusUnavailable):
        await ensure_topics(impostor)
    config = kafka_broker.layout.properties_file
    assert config.stat().st_mode & 0o077 == 0, "the broker's config holds secrets"
    assert "PLAINTEXT://" not in config.read_text().replace("SASL_PLAINTEXT", "")
