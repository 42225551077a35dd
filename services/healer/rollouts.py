"""The healer's canary rollouts: the calls each revision answered (from the api's request
stats), and each tick's judgement of every canary in progress, published as a
`CanaryAnalysed` (with a `FunctionRolledBack` on abort)."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from events.envelope import Envelope
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

Publish = Callable[[Payload, str | None], Awaitable[Envelope]]
"""Publishes a decision, caused by the event id given; returns its envelope."""


@dataclass
class RevisionCalls:
    """Per (function, revision): (when heard, requests, errors, latency buckets)."""

    samples: dict[tuple[str, int], deque[tuple[float, int, int, list[int]]]] = field(
        default_factory=dict
    )

    def add(self, stats: RequestStats, heard_at: float) -> None:
        if not stats.revision or not stats.requests:
            return
        found = self.samples.setdefault((stats.function, stats.revision), deque())
        found.append((heard_at, stats.requests, stats.errors, list(stats.latency_fine)))
        while found and found[0][0] < heard_at - HORIZON_S:
            found.popleft()

    def tally(self, function: str, revision: int, since: float) -> Tally:
        tally = Tally()
        for heard_at, requests, errors, buckets in self.samples.get((function, revision), ()):
            if heard_at >= since:
                tally.add(requests, errors, buckets)
        return tally

    def shift(self, offset: float) -> None:
        for key, found in self.samples.items():
            self.samples[key] = deque((at + offset, *rest) for at, *rest in found)  # type: ignore[misc]

    def forget(self, functions: set[str]) -> None:
        for key in [k for k in self.samples if k[0] in functions]:
            del self.samples[key]


@dataclass
class Rollouts:
    world: World
    publish: Publish
    epoch: Callable[[], int]
    """This healer's epoch as its role's leader (`events.fencing`)."""
    calls: RevisionCalls = field(default_factory=RevisionCalls)
    said: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)
    """Function -> when its canary last said it waits, and with which numbers."""

    def heard(self, stats: RequestStats, heard_at: float, *, live: bool) -> None:
        """Keep a function's calls while it has a canary (all of them while the history is
        read: the rollout may be folded after its calls)."""
        view = self.world.function(stats.function)
        if not live or (view is not None and view.rollout is not None):
            self.calls.add(stats, heard_at)

    async def judge(self, view: FunctionView, now: float) -> None:
        """Judge the function's canary, if one is in progress."""
        rollout = view.rollout
        if rollout is None:
            self.said.pop(view.name, None)
            self.calls.forget({view.name})
            return
        policy = Policy.of(view.revisions[rollout.canary])
        if rollout.step == 0:
            ready = any(
                r.revision == rollout.canary and r.state is ReplicaState.READY
                for r in self.world.replicas.live_of(view.name)
            )
            verdict = first_step(policy, canary_ready=ready)
        else:
            verdict = analyse(
                policy,
                step=rollout.step,
                percent=rollout.percent,
                canary=self.calls.tally(view.name, rollout.canary, rollout.step_heard_at),
                stable=self.calls.tally(view.name, rollout.stable, rollout.step_heard_at),
                started_at=rollout.step_heard_at,
                now=now,
            )
        if verdict is not None and self._worth_saying(view.name, verdict, now):
            await self._say(view, rollout, verdict)

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
        analysed = await self.publish(
            CanaryAnalysed(
                function=view.name,
                revision=rollout.canary,
                stable=rollout.stable,
                step=verdict.step,
                percent=verdict.percent,
                decision=verdict.decision,
                reason=verdict.reason,
                inputs=verdict.inputs,
                epoch=self.epoch(),
            ),
            None,
        )
        if verdict.decision == "abort":
            rolled = FunctionRolledBack(
                function=view.name,
                from_revision=rollout.canary,
                to_revision=rollout.stable,
                reason=f"canary aborted at step {verdict.step}: {verdict.reason}",
                inputs=verdict.inputs,
                epoch=self.epoch(),
            )
            await self.publish(rolled, analysed.id)
