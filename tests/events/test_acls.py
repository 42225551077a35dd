"""Each role's principal may write only the topics it owns and read only what it reads, on
the real broker; `shoal kafka-setup` keeps the grants exact. (A forged event a role may
write but may not say: tests/api/test_forged_events.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError
from click.testing import CliRunner

from events.acls import DESCRIBE, READ, WRITE, Grant, apply_grants, current_grants, grants
from events.settings import BusSettings
from events.topics import (
    ALL_TOPICS,
    READS,
    ROLES,
    Topic,
)
from services.cli.main import cli
from services.local.kafka_broker import LocalKafkaBroker

pytestmark = pytest.mark.kafka


def as_role(bus: BusSettings, broker: LocalKafkaBroker, role: str) -> BusSettings:
    return bus.signed_in(broker.credentials(role))


async def may_write(settings: BusSettings, topic: Topic) -> bool:
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    await producer.start()
    try:
        await asyncio.wait_for(
            producer.send_and_wait(topic.name(settings.namespace), b"probe", key=b"k"), 20
        )
        return True
    except TopicAuthorizationFailedError:
        return False
    finally:
        await producer.stop()


async def may_describe(settings: BusSettings, topic: Topic) -> bool:
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        (found,) = await admin.describe_topics([topic.name(settings.namespace)])
        return bool(found["error_code"] == 0)
    finally:
        await admin.close()


async def may_read(settings: BusSettings, topic: Topic, timeout_s: float = 5.0) -> bool:
    """Whether this principal reads the record an operator wrote first to partition 0. (A
    consumer of a topic it may not describe asks for metadata in a tight loop: not tried.)"""
    if not await may_describe(settings, topic):
        return False
    consumer = AIOKafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic.name(settings.namespace), 0)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any((await consumer.getmany(timeout_ms=200)).values()):
                return True
        return False
    except TopicAuthorizationFailedError:
        return False
    finally:
        await consumer.stop()


def test_the_grants_are_what_the_issue_names() -> None:
    """Only the scheduler and the healer write node commands; node-agents write replica
    status, container stats and heartbeats; only the api writes function events, request
    stats and demand; nobody but an operator reads the dead letters."""
    writers = {
        topic.suffix: {
            g.principal for g in grants() if g.operation == WRITE and topic.holds(g.prefix)
        }
        for topic in ALL_TOPICS
    }
    assert writers["node-commands"] == {"User:scheduler", "User:healer"}
    assert writers["functions"] == writers["request-stats"] == writers["demand"] == {"User:api"}
    for kind in ("replicas", "container-stats", "heartbeats", "node-status"):
        assert writers[kind] == {"User:node"}
    readers = {g.principal for g in grants() if g.operation == READ and g.prefix == "dead-letter."}
    assert readers == set()
    assert Grant("User:node", "functions.", DESCRIBE) not in grants()


async def test_each_role_writes_exactly_its_own_topics(
    kafka_broker: LocalKafkaBroker, bus: BusSettings
) -> None:
    for role in ROLES:
        settings = as_role(bus, kafka_broker, role)
        found = await asyncio.gather(*(may_write(settings, t) for t in ALL_TOPICS))
        wanted = [role in t.writers for t in ALL_TOPICS]
        assert found == wanted, (role, [t.suffix for t in ALL_TOPICS])


async def test_each_role_reads_exactly_what_it_reads(
    kafka_broker: LocalKafkaBroker, bus: BusSettings
) -> None:
    producer = AIOKafkaProducer(**bus.producer_kwargs())
    await producer.start()
    try:
        for topic in ALL_TOPICS:
            await producer.send_and_wait(topic.name(bus.namespace), b"first", partition=0)
    finally:
        await producer.stop()
    for role in ROLES:
        settings = as_role(bus, kafka_broker, role)
        found = await asyncio.gather(*(may_read(settings, t) for t in ALL_TOPICS))
        wanted = [t in READS[role] for t in ALL_TOPICS]
        assert found == wanted, (role, [t.suffix for t in ALL_TOPICS])


def test_kafka_setup_restores_the_declared_grants_and_refuses_a_role(
    kafka_broker: LocalKafkaBroker, namespace: str
) -> None:
    admin = BusSettings(bootstrap_servers=kafka_broker.layout.bootstrap, namespace=namespace)
    admin = admin.signed_in(kafka_broker.credentials("admin"))
    taken = Grant("User:node", "replicas.", WRITE)
    extra = Grant("User:node", "functions.", WRITE)
    changed = (grants() - {taken}) | {extra}
    asyncio.run(apply_grants(admin, changed))
    assert asyncio.run(grants_become(admin, changed)) == changed
    env = {**admin.env(), "SHOAL_KAFKA_NAMESPACE": namespace}
    done = CliRunner().invoke(cli, ["kafka-setup"], env=env)
    assert done.exit_code == 0, done.output
    assert "grants in place" in done.output
    assert asyncio.run(grants_become(admin, grants())) == grants()
    as_node = {**env, "SHOAL_KAFKA_CREDENTIALS_FILE": str(kafka_broker.credentials("node"))}
    refused = CliRunner().invoke(cli, ["kafka-setup"], env=as_node)
    assert refused.exit_code == 1 and "not as the node role" in refused.output


async def grants_become(admin: BusSettings, wanted: frozenset[Grant]) -> frozenset[Grant]:
    """The broker's grants once they are `wanted`, or after 10 s (the broker applies what
    its controller committed a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        found = await current_grants(admin)
        if found == wanted or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)
