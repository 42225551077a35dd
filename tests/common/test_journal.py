"""Publishing within a bound: an unacknowledged change is not reported as refused, and is
applied when Kafka acknowledges it after all."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from events.envelope import Envelope
from events.types import FunctionDeleted, ScaleDecision
from services.common.journal import Journal, Unacknowledged
from tests.support.clock import FakeClock


class SlowProducer:
    """Acknowledges a send only when told to (or refuses it)."""

    source = "/shoal/test/journal"

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[None]] = []

    async def send(self, _: Envelope) -> asyncio.Future[None]:
        acknowledged = asyncio.get_running_loop().create_future()
        self.pending.append(acknowledged)
        return acknowledged


def journal_over(producer: SlowProducer, applied: list[Envelope]) -> Journal:
    return Journal(cast(Any, producer), apply=applied.append, clock=FakeClock())


async def test_a_change_acknowledged_late_is_reported_unknown_and_applied_later() -> None:
    producer, applied = SlowProducer(), []
    journal = journal_over(producer, applied)
    with pytest.raises(Unacknowledged):
        await journal.publish_within(FunctionDeleted(function="f"), 0.05)
    assert applied == []
    producer.pending[0].set_result(None)
    for _ in range(10):
        await asyncio.sleep(0)
    assert [e.data for e in applied] == [FunctionDeleted(function="f")]


async def test_a_refused_change_raises_what_kafka_said_and_applies_nothing() -> None:
    producer, applied = SlowProducer(), []
    journal = journal_over(producer, applied)
    published = asyncio.create_task(journal.publish_within(FunctionDeleted(function="f"), 5))
    await asyncio.sleep(0.01)
    producer.pending[0].set_exception(ConnectionError("refused"))
    with pytest.raises(ConnectionError):
        await published
    assert applied == []


def test_what_a_service_publishes_is_held_within_its_declared_bounds() -> None:
    journal = journal_over(SlowProducer(), [])
    decision = ScaleDecision(
        function="f",
        revision=1,
        previous=0,
        desired=1,
        panic=False,
        reason="r" * 5000,
        inputs={"rate": float("inf")},
    )
    held = journal.envelope(decision).data
    assert isinstance(held, ScaleDecision)
    assert held.inputs == {"rate": 1e15} and len(held.reason) == 2000
