"""An election that cannot work (no broker, a refused group) stops beating: after
ELECTION_STALL_S the service's /healthz says so, and its supervisor restarts it. A leader
acts only while its lease holds."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import SimpleNamespace

from events.settings import BusSettings
from services.common.groups import _watch_heartbeats
from services.common.leadership import Leadership
from services.common.liveness import Liveness
from services.common.logs import StructLog
from services.common.loop import ELECTION_STALL_S, _elect
from services.common.runtime import ServiceContext
from services.common.settings import CommonSettings
from tests.support.clock import FakeClock
from tests.support.ports import free_port


async def test_an_election_that_never_works_is_a_stalled_loop() -> None:
    environ = {"SHOAL_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    settings = CommonSettings.from_env(environ, service="scheduler", default_port=1)
    assert isinstance(settings.bus, BusSettings)
    clock = FakeClock()
    ctx = ServiceContext(settings=settings, producer=None, log=StructLog("t"))  # type: ignore[arg-type]
    ctx.liveness = Liveness(clock)
    resign = asyncio.Event()
    task = _elect(ctx, lambda: 0, resign)
    try:
        await asyncio.sleep(0.3)
        assert ctx.leadership is not None and not ctx.leadership.leading
        assert ctx.liveness.stalled() == []
        clock.advance(ELECTION_STALL_S + 1)
        assert ctx.liveness.stalled() == ["leadership"]
    finally:
        resign.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def test_a_leader_decides_only_while_its_lease_holds() -> None:
    """From the join that made it leader until LEASE_SHARE of a session after the last
    heartbeat the coordinator accepted; a later heartbeat renews it."""
    clock = FakeClock()
    leadership = Leadership(
        BusSettings(),
        role="scheduler",
        instance="a",
        log=StructLog("t"),
        session_s=2.5,
        clock=clock.now,
    )
    assert not leadership.leads()
    leadership.accepted(clock.now())  # the SyncGroup that assigned it the lead
    leadership._won(generation=4)
    assert leadership.leads() and leadership.epoch == 4
    clock.advance(1.9)
    assert leadership.leads()
    clock.advance(0.2)  # 2.1 s > 0.8 of the session since the last accepted heartbeat
    assert not leadership.leads() and leadership.leading, "still assigned, but not acting"
    leadership.accepted(clock.now() - 1.0)
    assert leadership.leads(), "a heartbeat sent 1 s ago was accepted: renewed"
    leadership._lost()
    assert not leadership.leads()


async def test_a_heartbeat_or_join_the_coordinator_accepted_renews_and_nothing_else() -> None:
    """What `_watch_heartbeats` counts, with when it was sent: a Heartbeat or SyncGroup
    answered without error; not one answered "rebalancing", nor any other request."""

    @dataclass
    class Sent:
        API_KEY: int

    @dataclass
    class Answer:
        error_code: int

    answers = {12: Answer(0), 14: Answer(0), 11: Answer(0), 13: Answer(27)}

    async def send(request: Sent) -> Answer:
        clock.advance(0.5)
        return answers[request.API_KEY]

    clock = FakeClock()
    coordinator = SimpleNamespace(_send_req=send)
    accepted: list[float] = []
    _watch_heartbeats(SimpleNamespace(_coordinator=coordinator), accepted.append, clock.now)  # type: ignore[arg-type]
    started = clock.now()
    for kind in (11, 14, 12):
        await coordinator._send_req(Sent(kind))
    answers[12] = Answer(27)
    await coordinator._send_req(Sent(12))
    assert accepted == [started + 0.5, started + 1.0], "the SyncGroup's and the heartbeat's"
