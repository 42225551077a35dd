"""Each role's principal may write only the topics it owns and read only what it reads, on
the real broker; a forged event a role may write on its own topic but may not say is
dead-lettered by its readers and changes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from click.testing import CliRunner

from events.acls import DESCRIBE, READ, WRITE, Grant, apply_grants, current_grants, grants
from events.bus import EventProducer
from events.envelope import encode, new_envelope
from events.settings import BusSettings
from events.topics import (
    ALL_TOPICS,
    DEAD_LETTER,
    NODE_STATUS,
    NODES,
    READS,
    ROLES,
    Topic,
)
from events.types import NodeCapacity, NodeJoined, NodeLost
from services.cli.main import cli
from services.local.kafka_broker import LocalKafkaBroker
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka

TOKEN = "test-token-0123456789"


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


@pytest.fixture
async def api(bus: BusSettings, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    process = ServiceProcess(
        bus,
        module="api",
        port_variable="SHOAL_API_HTTP_PORT",
        log_dir=tmp_path,
        name="api",
        SHOAL_API_TOKEN=TOKEN,
    )
    await process.start()
    yield process
    await process.stop()


async def nodes_of(api: ServiceProcess, timeout_s: float = 20.0) -> dict[str, Any]:
    """The api's nodes, once it lists any."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{api.url}/v1/nodes", headers=headers) as reply:
                found = {n["node"]: n for n in (await reply.json())["nodes"]}
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)


async def test_a_nodes_forged_loss_of_another_node_is_refused_by_the_broker_or_dead_lettered(
    kafka_broker: LocalKafkaBroker, bus: BusSettings, api: ServiceProcess
) -> None:
    node = EventProducer(as_role(bus, kafka_broker, "node"), source="/shoal/node/n2")
    await node.start()
    try:
        capacity = NodeCapacity(cpus=2, memory_mb=1024, max_replicas=8)
        await node.publish(
            NodeJoined(node="n1", address="127.0.0.1", runtime="docker", capacity=capacity)
        )
        lost = new_envelope(
            NodeLost(node="n1", last_heartbeat_at="", timeout_s=3, evidence="forged"),
            source="/shoal/healer",
        )
        with pytest.raises(KafkaError):
            await (await node.send_raw(NODES.name(bus.namespace), **_parts(lost)))
        forged = await (await node.send_raw(NODE_STATUS.name(bus.namespace), **_parts(lost)))
    finally:
        await node.stop()
    reason = await dead_letter_reason(bus, f"{forged.topic}/{forged.partition}/{forged.offset}")
    assert "belongs on the nodes topic" in reason, reason
    seen = await nodes_of(api)
    assert "n1" in seen and not seen["n1"]["lost"], seen


def _parts(envelope: Any) -> dict[str, Any]:
    key, value, headers = encode(envelope)
    return {"key": key, "value": value, "headers": headers}


async def dead_letter_reason(bus: BusSettings, origin: str, timeout_s: float = 30.0) -> str:
    """Why a reader dead-lettered the record at `origin` (topic/partition/offset)."""
    consumer = AIOKafkaConsumer(
        DEAD_LETTER.name(bus.namespace), **bus.client_kwargs(), auto_offset_reset="earliest"
    )
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    headers = {k: v.decode() for k, v in record.headers}
                    if headers.get("shoal_dlq_origin") == origin:
                        return headers["shoal_dlq_reason"]
    finally:
        await consumer.stop()
    raise AssertionError(f"nothing dead-lettered {origin} within {timeout_s:.0f} s")


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
