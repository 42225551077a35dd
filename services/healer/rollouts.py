"""The healer's canary rollouts: the calls each revision answered (from the api's request
stats), and each tick's judgement of every canary in progress, published as a
`CanaryAnalysed` (with a `FunctionRolledBack` on abort)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from events.envelope import Envelope
from events.idempotency import SeenIds
from events.lifecycle import ReplicaState
from events.projections.functions import FunctionView
from events.projections.traffic import Rollout
from events.projections.world import World
from events.types import CanaryAnalysed, FunctionRolledBack, Payload, RequestStats
from services.healer.canary import Policy, Tally, Verdict, analyse, first_step

HORIZON_S = 3600.0
"""Calls older than this are forgotten: a longer step is judged on its last hour."""
WAIT_EVERY_S = 5.0
"""A canary that waits says so at most this often (and only when its numbers changed)."""
SEEN_STATS = 20_000

Publish = Callable[[Payload, str | None], Awaitable[Envelope]]
"""Publishes a decision, caused by the event id given; returns its envelope."""
Second = tuple[int, Tally]


def sound(stats: RequestStats) -> bool:
    """Whether a report's counts agree with each other (no more errors or timed calls
    than calls): one that does not is not counted."""
    return stats.errors <= stats.requests and sum(stats.latency_fine) <= stats.requests


@dataclass
class RevisionCalls:
    """Per (function, revision): the calls answered, summed per second heard."""

    seconds: dict[tuple[str, int], deque[Second]] = field(default_factory=dict)
    seen: SeenIds = field(default_factory=lambda: SeenIds(SEEN_STATS))

    def add(self, stats: RequestStats, heard_at: float, event_id: str) -> None:
        if not stats.revision or not stats.requests or not sound(stats) or event_id in self.seen:
            return
        self.seen.add(event_id)
        found = self.seconds.setdefault((stats.function, stats.revision), deque())
        second = math.floor(heard_at)
        if not found or found[-1][0] < second:
            found.append((second, Tally()))
        at = next((t for s, t in reversed(found) if s <= second), found[0][1])
        at.add(stats.requests, stats.errors, list(stats.latency_fine))
        while found and found[0][0] < heard_at - HORIZON_S:
            found.popleft()

    def tally(self, function: str, revision: int, since: float) -> Tally:
        """The calls heard from the second of `since` on."""
        total = Tally()
        for second, counts in self.seconds.get((function, revision), ()):
            if second >= math.floor(since):
                total.add(counts.requests, counts.errors, counts.buckets)
        return total

    def shift(self, offset: float) -> None:
        for key, found in self.seconds.items():
            self.seconds[key] = deque((math.floor(s + offset), t) for s, t in found)

    def forget(self, functions: set[str]) -> None:
        for key in [k for k in self.seconds if k[0] in functions]:
            del self.seconds[key]


@dataclass
class Rollouts:
    world: World
    publish: Publish
    epoch: Callable[[], int]
    """This healer's epoch as its role's leader (`events.fencing`)."""
    calls: RevisionCalls = field(default_factory=RevisionCalls)
    said: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)
    """Function -> when its canary last said it waits, and with which numbers."""

    def heard(self, stats: RequestStats, heard_at: float, event_id: str, *, live: bool) -> None:
        """Keep a function's calls while it has a canary (or may have one: while the
        history is read back, its rollout may come after its calls)."""
        view = self.world.function(stats.function)
        if (view is None and not live) or (view is not None and view.rollout is not None):
            self.calls.add(stats, heard_at, event_id)

    def tidy(self) -> None:
        """Forget the calls of functions with no canary in progress."""
        idle = {
            function
            for function, _ in self.calls.seconds
            if (view := self.world.function(function)) is None or view.rollout is None
        }
        self.calls.forget(idle)

    async def judge(self, view: FunctionView, now: float) -> None:
        """Judge the function's canary, if one is in progress."""
        rollout = view.rollout
        if rollout is None or view.deleted:
            self.said.pop(view.name, None)
            return
        if rollout.analysis is not None and rollout.analysis.decision == "abort":
            # aborted, but its rollback was not heard (the healer that aborted it died)
            await self._roll_back(view, rollout, rollout.analysis, None)
            return
        verdict = self._verdict(view, rollout, now)
        if verdict is not None and self._worth_saying(view.name, verdict, now):
            await self._say(view, rollout, verdict)

    def _verdict(self, view: FunctionView, rollout: Rollout, now: float) -> Verdict | None:
        policy = Policy.of(view.revisions[rollout.canary])
        if rollout.step == 0:
            ready = any(
                r.revision == rollout.canary and r.state is ReplicaState.READY
                for r in self.world.replicas.live_of(view.name)
            )
            return first_step(policy, canary_ready=ready)
        return analyse(
            policy,
            step=rollout.step,
            percent=rollout.percent,
            canary=self.calls.tally(view.name, rollout.canary, rollout.step_heard_at),
            stable=self.calls.tally(view.name, rollout.stable, rollout.step_heard_at),
            started_at=rollout.step_heard_at,
            now=now,
        )

    def _worth_saying(self, function: str, verdict: Verdict, now: float) -> bool:
        if verdict.decision != "wait":
            return True
        numbers = {k: v for k, v in verdict.inputs.items() if k != "elapsed_s"}
        last = self.said.get(function)
        if last is not None and (now - last[0] < WAIT_EVERY_S or last[1] == numbers):
            return False
        self.said[function] = (now, numbers)
        return True

    async def _say(self, view: FunctionView, rollout: Rollout, verdict: Verdict) -> None:
        analysis = CanaryAnalysed(
            function=view.name,
            revision=rollout.canary,
            stable=rollout.stable,
            step=verdict.step,
            percent=verdict.percent,
            decision=verdict.decision,
            reason=verdict.reason,
            inputs=verdict.inputs,
            epoch=self.epoch(),
        )
        analysed = await self.publish(analysis, None)
        if verdict.decision == "abort":
            await self._roll_back(view, rollout, analysis, analysed.id)

    async def _roll_back(
        self, view: FunctionView, rollout: Rollout, abort: CanaryAnalysed, cause: str | None
    ) -> None:
        rolled = FunctionRolledBack(
            function=view.name,
            from_revision=rollout.canary,
            to_revision=rollout.stable,
            reason=f"canary aborted at step {abort.step}: {abort.reason}",
            inputs=abort.inputs,
            epoch=self.epoch(),
        )
        await self.publish(rolled, cause)
