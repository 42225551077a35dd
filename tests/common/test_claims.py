"""A leader's claims: every subject at a new epoch, then only the new ones; a subject no
longer there is forgotten and claimed again if it comes back."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import RecordMetadata

from events.settings import BusSettings
from events.types import CommandsClaimed, NodeClaimed, ScaleClaimed
from services.common.claims import Claims
from services.common.leadership import Leadership
from services.common.logs import StructLog
from services.common.loop import _may_decide
from services.common.runtime import ServiceContext
from tests.support.clock import FakeClock


def keys(claims: list) -> list[tuple[str, str, int]]:  # type: ignore[type-arg]
    return [(type(c).__name__, c.key, c.epoch) for c in claims]


def test_a_new_epoch_claims_every_subject_once() -> None:
    claims = Claims()
    subjects = {CommandsClaimed: {"n2", "n1"}, NodeClaimed: {"n1"}, ScaleClaimed: {"f"}}
    due = claims.due(3, subjects)
    assert keys(due) == [
        ("CommandsClaimed", "n1", 3),
        ("CommandsClaimed", "n2", 3),
        ("NodeClaimed", "n1", 3),
        ("ScaleClaimed", "f", 3),
    ]
    assert claims.due(3, subjects) == due, "not made until noted"
    claims.note(due, [])
    assert claims.due(3, subjects) == []
    assert keys(claims.due(3, {CommandsClaimed: {"n1", "n2", "n3"}})) == [
        ("CommandsClaimed", "n3", 3)
    ]
    assert len(claims.due(4, subjects)) == 4, "a new epoch claims everything again"


def test_a_subject_gone_and_back_is_claimed_again() -> None:
    claims = Claims()
    claims.note(claims.due(1, {CommandsClaimed: {"n1", "n2"}}), [])
    assert claims.due(1, {CommandsClaimed: {"n2"}}) == []
    assert claims.made[CommandsClaimed] == {"n2"}
    assert keys(claims.due(1, {CommandsClaimed: {"n1", "n2"}})) == [("CommandsClaimed", "n1", 1)]


def test_the_claims_stand_where_kafka_put_them_until_read_back() -> None:
    claims = Claims()
    due = claims.due(2, {CommandsClaimed: {"n1", "n2"}})
    where = [RecordMetadata("t", 3, TopicPartition("t", 3), 41, 0, None, -1)] * 2
    where.append(RecordMetadata("t", 3, TopicPartition("t", 3), 7, 0, None, -1))
    claims.note(due, where)
    assert claims.unread == {TopicPartition("t", 3): 42}


class Producer:
    """Acknowledges each claim at the next offset of partition 0, moving the clock."""

    def __init__(self, clock: FakeClock, takes_s: float) -> None:
        self.clock, self.takes_s, self.offset = clock, takes_s, 0

    def envelope(self, payload: object) -> object:
        return payload

    async def send(self, envelope: object) -> asyncio.Future[RecordMetadata]:
        self.clock.advance(self.takes_s)
        self.offset += 1
        done: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        done.set_result(RecordMetadata("t", 0, TopicPartition("t", 0), self.offset, 0, None, -1))
        return done


class Consumer:
    def __init__(self) -> None:
        self.position = 0

    async def reached(self, target: dict[TopicPartition, int]) -> bool:
        return all(self.position >= end for end in target.values())

    async def poll_once(self, timeout_ms: int) -> int:
        return 0


def leader(clock: FakeClock, producer: Producer) -> ServiceContext:
    ctx = ServiceContext(settings=None, producer=producer, log=StructLog("t"))  # type: ignore[arg-type]
    ctx.leadership = Leadership(
        BusSettings(), role="scheduler", instance="a", log=StructLog("t"), clock=clock.now
    )
    ctx.leadership.accepted(clock.now())
    ctx.leadership._won(generation=3)
    return ctx


async def test_a_leader_decides_once_its_claims_are_read_back_and_its_lease_holds() -> None:
    clock = FakeClock()
    ctx, consumer, claims = leader(clock, Producer(clock, 0.01)), Consumer(), Claims()
    subjects = {CommandsClaimed: {"n1", "n2"}}
    assert not await _may_decide(ctx, consumer, claims, subjects), "not read back yet"  # type: ignore[arg-type]
    consumer.position = 2
    assert not await _may_decide(ctx, consumer, claims, subjects), "one of two read"  # type: ignore[arg-type]
    consumer.position = 3
    assert await _may_decide(ctx, consumer, claims, subjects)  # type: ignore[arg-type]
    assert claims.unread == {}


async def test_a_lease_that_lapsed_while_the_claims_were_taken_decides_nothing() -> None:
    clock = FakeClock()
    ctx, consumer, claims = leader(clock, Producer(clock, 1.5)), Consumer(), Claims()
    consumer.position = 10
    subjects = {CommandsClaimed: {"n1", "n2"}}
    assert not await _may_decide(ctx, consumer, claims, subjects)  # type: ignore[arg-type]
    assert claims.made[CommandsClaimed] == {"n1", "n2"}, "the claims stand all the same"


async def test_a_leader_polls_for_its_claims_and_decides_in_the_same_round() -> None:
    class Reading(Consumer):
        async def poll_once(self, timeout_ms: int) -> int:
            self.position += 1
            return 1

    clock = FakeClock()
    ctx, consumer, claims = leader(clock, Producer(clock, 0.01)), Reading(), Claims()
    assert await _may_decide(ctx, consumer, claims, {CommandsClaimed: {"n1", "n2"}})  # type: ignore[arg-type]
    assert consumer.position == 3 and claims.unread == {}
