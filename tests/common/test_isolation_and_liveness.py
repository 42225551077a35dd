"""Deciders keep one failure to one function; loops that die start again; stalled loops
fail the health check."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from events.types import DecisionFailed, Payload
from services.common import liveness as liveness_module
from services.common.isolation import Isolation, Quarantine
from services.common.liveness import Liveness, supervised
from services.common.logs import StructLog
from tests.support.clock import FakeClock


class Journal:
    def __init__(self) -> None:
        self.published: list[Payload] = []

    async def publish(self, payload: Payload, **_: Any) -> None:
        self.published.append(payload)


def test_a_failing_key_backs_off_doubling_up_to_a_minute() -> None:
    q = Quarantine()
    assert q.ready("f", 0.0)
    assert q.failed("f", 0.0) == (1, 1.0)
    assert not q.ready("f", 0.5) and q.ready("f", 1.0)
    assert q.failed("f", 1.0) == (2, 2.0)
    for _ in range(10):
        _, wait = q.failed("f", 3.0)
    assert wait == 60.0
    q.succeeded("f")
    assert q.ready("f", 3.0) and "f" not in q.failures


async def test_a_decision_that_raises_is_reported_once_and_the_others_go_on() -> None:
    journal = Journal()
    isolation = Isolation("scheduler", journal, StructLog("test"))  # type: ignore[arg-type]
    done: list[str] = []

    async def broken() -> None:
        raise ZeroDivisionError("absurd spec")

    async def fine(name: str) -> None:
        done.append(name)

    for now in (0.0, 0.5, 1.0, 3.5):
        await isolation.decide("bad", now, broken)
        await isolation.decide("good", now, lambda: fine("good"))
    assert done == ["good"] * 4
    (report,) = journal.published
    assert isinstance(report, DecisionFailed)
    assert (report.subject, report.decider, report.retry_in_s) == ("bad", "scheduler", 1.0)
    assert "absurd spec" in report.error
    assert isolation.quarantine.failures["bad"] == 3, "tried at 0, 1 and 3.5 s only"


def test_a_loop_that_stops_beating_is_stalled() -> None:
    clock = FakeClock()
    liveness = Liveness(clock)
    liveness.beat("poll", within_s=5)
    liveness.beat("beats", within_s=60)
    clock.advance(6)
    assert liveness.stalled() == ["poll"]
    liveness.beat("poll", within_s=5)
    assert liveness.stalled() == []


async def test_a_supervised_loop_that_dies_is_started_again() -> None:
    stop = asyncio.Event()
    runs: list[int] = []

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("boom")
        stop.set()

    await asyncio.wait_for(supervised("w", work, log=StructLog("test"), stop=stop), 10)
    assert runs == [0, 1, 2]


async def test_a_supervised_loop_backs_off_and_forgets_its_back_off_after_a_long_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(liveness_module, "RESTART_FIRST_S", 0.001)
    monkeypatch.setattr(liveness_module, "RESTART_MAX_S", 0.05)
    stop, clock, waits = asyncio.Event(), FakeClock(), []
    lasts = [0.0, 0.0, 0.0, 1.0, 0.0]

    class Recording(StructLog):
        def error(self, msg: str, **fields: Any) -> None:
            waits.append(fields["after_s"])

    async def work() -> None:
        clock.advance(lasts[len(waits)])
        if len(waits) == len(lasts) - 1:
            stop.set()
        else:
            raise RuntimeError("boom")

    await asyncio.wait_for(supervised("w", work, log=Recording("test"), stop=stop, clock=clock), 10)
    assert waits == [0.001, 0.002, 0.004, 0.001]


async def test_a_supervised_loop_that_returns_is_not_spun() -> None:
    stop, runs = asyncio.Event(), []

    async def work() -> None:
        runs.append(1)

    task = asyncio.create_task(supervised("w", work, log=StructLog("test"), stop=stop))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert 1 <= len(runs) <= 3
