"""A node's forged event, on the real broker and the real api: refused by the broker on
a topic the node may not write, dead-lettered by the api on the node's own topic, and
changing nothing either way."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from events.bus import EventProducer
from events.envelope import encode, new_envelope
from events.settings import BusSettings
from events.topics import DEAD_LETTER, NODE_STATUS, NODES
from events.types import NodeCapacity, NodeJoined, NodeLost
from services.local.kafka_broker import LocalKafkaBroker
from tests.api.conftest import TOKEN
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka


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
    node = EventProducer(bus.signed_in(kafka_broker.credentials("node")), source="/shoal/node/n2")
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
