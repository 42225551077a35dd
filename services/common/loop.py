"""The one service loop: rebuild from the history, follow it live, and after every poll let
the service act (decide, plan, heal) on what it now knows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Protocol

from aiokafka import TopicPartition

from events.consumer import LiveConsumer
from events.deadletter import DeadLetters
from events.envelope import Envelope
from events.history import HistoryReader
from events.projections.world import settle
from events.topics import Topic
from services.common.claims import NONE, Claims, Subjects, make_claims
from services.common.leadership import Leadership
from services.common.liveness import supervised
from services.common.runtime import ServiceContext

Apply = Callable[[Envelope], object]
LOOP_STALL_S = 120.0
"""A service loop that has not gone round for this long is stalled (`/healthz` fails)."""
READ_BACK_POLLS = 50
"""How many short polls (20 ms at most each) a leader's round waits for its claims to be
read back before the next round tries again."""
ELECTION_STALL_S = 60.0
"""An election that has not worked for this long (its group cannot be joined) is stalled."""


class EventService(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topics(self) -> Sequence[Topic]: ...

    @property
    def poll_ms(self) -> int: ...

    def apply(self, envelope: Envelope) -> object:
        """Fold one event (from the history or live) into the service's memory."""

    async def on_ready(self, ctx: ServiceContext) -> None:
        """Called once, when the history is folded and before following it live."""

    async def after_poll(self, ctx: ServiceContext) -> None:
        """Called after every poll of the live topics: act on what is known now."""


async def rebuild(
    ctx: ServiceContext,
    *,
    name: str,
    topics: Sequence[Topic],
    apply: Apply,
    partitions: Mapping[Topic, Sequence[int]] | None = None,
    since: Mapping[Topic, datetime] | None = None,
) -> dict[TopicPartition, int]:
    """Fold everything the topics hold now; returns where each partition ended."""
    dead = DeadLetters(ctx.producer, consumer=name)
    reader = HistoryReader(
        ctx.settings.bus, topics=topics, partitions=partitions, since=since, refused=dead.send
    )
    async for batch in reader.batches():
        for envelope in batch:
            try:
                apply(envelope)
            except Exception as exc:  # one event the fold cannot take stops nothing
                await dead.send_event(envelope, f"could not be applied: {exc!r}")
        settle()
        await asyncio.sleep(0)
    return reader.ends


def live_consumer(
    ctx: ServiceContext,
    *,
    name: str,
    topics: Sequence[Topic],
    apply: Apply,
    start_at: Mapping[TopicPartition, int],
    max_batch: int = 5000,
) -> LiveConsumer:
    async def handle(envelope: Envelope) -> None:
        apply(envelope)

    return LiveConsumer(
        ctx.settings.bus,
        name=name,
        topics=topics,
        handler=handle,
        dead_letters=ctx.producer,
        start_at=start_at,
        max_batch=max_batch,
    )


async def follow(
    ctx: ServiceContext,
    *,
    name: str,
    topics: Sequence[Topic],
    apply: Apply,
    since: Mapping[Topic, datetime] | None = None,
) -> None:
    """Fold the topics (from `since`) and go on with what arrives, until stopped."""
    ends = await rebuild(ctx, name=name, topics=topics, apply=apply, since=since)
    consumer = live_consumer(ctx, name=name, topics=topics, apply=apply, start_at=ends)
    await consumer.start()
    try:
        while not ctx.stop.is_set():
            await consumer.poll_once()
    finally:
        await consumer.stop()


async def run_service(
    ctx: ServiceContext,
    service: EventService,
    *,
    since: Mapping[Topic, datetime] | None = None,
    elected: Callable[[], int] | None = None,
    subjects: Callable[[], Subjects] = NONE,
) -> None:
    """Rebuild, become ready, then poll and act until the service is asked to stop. Topics
    named in `since` are read back only from then. An `elected` service (a decider; the
    function gives the newest epoch of its role on the log) acts only while it leads, and
    claims its `subjects` before it acts (`services.common.claims`)."""
    ends = await rebuild(
        ctx, name=service.name, topics=service.topics, apply=service.apply, since=since
    )
    consumer = live_consumer(
        ctx, name=service.name, topics=service.topics, apply=service.apply, start_at=ends
    )
    await consumer.start()
    election: asyncio.Task[None] | None = None
    turn = partial(_round, ctx, service, consumer, Claims(), subjects)
    resign = asyncio.Event()
    """Set once the last round is over: only then does a leader leave its group."""
    try:
        await service.on_ready(ctx)
        ctx.ready = True
        if elected is not None:
            election = _elect(ctx, elected, resign)
        failures = 0
        while not ctx.stop.is_set():
            try:
                await turn()
                failures = 0
            except Exception as exc:  # the broker away, a publish refused: go on later
                failures += 1
                ctx.log.error("service loop failed; going on", error=repr(exc)[:500])
                await _pause(ctx, min(30.0, 0.5 * 2 ** min(failures, 6)))
    finally:
        if election is not None:  # leave the group: another instance leads at once
            resign.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(election, timeout=10)
        await consumer.stop()


def _elect(
    ctx: ServiceContext, floor: Callable[[], int], resign: asyncio.Event
) -> asyncio.Task[None]:
    settings = ctx.settings

    def beat() -> None:
        ctx.liveness.beat("leadership", within_s=ELECTION_STALL_S)

    beat()
    ctx.leadership = Leadership(
        settings.bus,
        role=settings.service,
        instance=settings.instance,
        log=ctx.log,
        floor=floor,
        session_s=settings.leader_session_s,
        beat=beat,
    )
    run = partial(ctx.leadership.run, resign)
    return asyncio.create_task(supervised("leadership", run, log=ctx.log, stop=resign))


async def _round(
    ctx: ServiceContext,
    service: EventService,
    consumer: LiveConsumer,
    claims: Claims,
    subjects: Callable[[], Subjects],
) -> None:
    """One poll, then the service's turn (a leader's after its claims); the loop's
    liveness beats at the end."""
    await consumer.poll_once(timeout_ms=service.poll_ms)
    if consumer.stalled():
        ctx.log.warning("consumer stalled with records waiting; starting it again")
        await consumer.restart()
    if ctx.leadership is None or ctx.leadership.leads():
        if ctx.leadership is None or await _may_decide(ctx, consumer, claims, subjects()):
            await service.after_poll(ctx)
    else:
        housekeep = getattr(service, "housekeep", None)
        if housekeep is not None:  # a standby keeps its memory bounded all the same
            await housekeep(ctx)
    ctx.liveness.beat(service.name, within_s=LOOP_STALL_S)
    await asyncio.sleep(0)


async def _may_decide(
    ctx: ServiceContext, consumer: LiveConsumer, claims: Claims, subjects: Subjects
) -> bool:
    """A leader's turn: its claims made and read back (the consumer polled for them,
    briefly), and its lease still holding (the claims may have taken a while); otherwise
    the next round decides."""
    assert ctx.leadership is not None
    made = await make_claims(ctx.producer, claims, ctx.leadership.epoch, subjects)
    if made:
        ctx.log.info("claimed", epoch=ctx.leadership.epoch, subjects=made)
    for _ in range(READ_BACK_POLLS):
        if not claims.unread or await consumer.reached(claims.unread):
            claims.unread.clear()
            return ctx.leadership.leads()
        await consumer.poll_once(timeout_ms=20)
    return False


async def _pause(ctx: ServiceContext, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.stop.wait(), seconds)
