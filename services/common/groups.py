"""Membership of a Kafka consumer group used to coordinate, not to read: the members
subscribe to the never-written `leaders` topic, and the group's assignor says who does
what (a decider role's leader, the api instances' shares of the replicas)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from events.settings import BusSettings
from events.topics import LEADERS

HEARTBEAT_API = 12
"""Kafka's api key of a Heartbeat request."""
SYNC_GROUP_API = 14
"""Kafka's api key of a SyncGroup request: answered without error, it ends a join."""


def group_consumer(
    bus: BusSettings,
    *,
    group: str,
    client_id: str,
    session_s: float,
    assignor: type[Any],
    rebalance_s: float | None = None,
) -> AIOKafkaConsumer:
    """A member of `group` whose session ends `session_s` after its last heartbeat, and
    who may take `rebalance_s` (a session unless told) to rejoin when the group changes."""
    return AIOKafkaConsumer(
        **bus.client_kwargs(),
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        session_timeout_ms=int(session_s * 1000),
        heartbeat_interval_ms=max(100, int(session_s * 1000 / 5)),
        rebalance_timeout_ms=int((rebalance_s or session_s) * 1000),
        auto_offset_reset="latest",
        partition_assignment_strategy=(assignor,),
    )


async def stay_member(
    consumer: AIOKafkaConsumer,
    listener: ConsumerRebalanceListener,
    *,
    bus: BusSettings,
    stop: asyncio.Event,
    beat: Callable[[], None],
    accepted: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Join and stay until `stop` (the caller stops the consumer, which leaves the group).
    `beat` is said at every turn of a membership that works; `accepted(sent_at)` is told
    of every heartbeat the coordinator accepted, with when it was sent on `clock`: the
    coordinator keeps the member at least a session past that moment."""
    consumer.subscribe([LEADERS.name(bus.namespace)], listener=listener)
    await consumer.start()
    if accepted is not None and clock is not None:
        _watch_heartbeats(consumer, accepted, clock)
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.2)
        await consumer.getmany(timeout_ms=0)
        beat()


def _watch_heartbeats(
    consumer: AIOKafkaConsumer, accepted: Callable[[float], None], clock: Callable[[], float]
) -> None:
    """Wrap the coordinator's requests (aiokafka says no other way whether a heartbeat was
    accepted): a Heartbeat or SyncGroup answered with no error counts, a Heartbeat
    answered "rebalancing" (which aiokafka treats as fine) does not."""
    coordinator = consumer._coordinator
    send = coordinator._send_req

    async def request(sent: Any) -> Any:
        sent_at = clock()
        answer = await send(sent)
        kind = getattr(sent, "API_KEY", None)
        if kind in (HEARTBEAT_API, SYNC_GROUP_API) and answer.error_code == 0:
            accepted(sent_at)
        return answer

    coordinator._send_req = request


def generation(consumer: AIOKafkaConsumer) -> int:
    """The group's generation (aiokafka keeps it on its coordinator)."""
    coordinator = getattr(consumer, "_coordinator", None)
    return int(getattr(coordinator, "generation", 0) or 0)


def member_id(consumer: AIOKafkaConsumer) -> str:
    """This member's id in its group (aiokafka keeps it on its coordinator)."""
    coordinator = getattr(consumer, "_coordinator", None)
    return str(getattr(coordinator, "member_id", "") or "")
