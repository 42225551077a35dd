"""Isolation of deciders: a decision that raises for one function or node is reported
once, and that one backs off while every other is decided as usual (as Kubernetes
controllers requeue a failing object with back-off and never exit on it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from events.types import DecisionFailed
from services.common.journal import Journal
from services.common.logs import StructLog

FIRST_S = 1.0
MOST_S = 60.0
Decider = Literal["autoscaler", "scheduler", "healer"]


@dataclass
class Quarantine:
    """Per key (a function or a node): failures in a row, and until when it waits."""

    failures: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)

    def ready(self, key: str, now: float) -> bool:
        return now >= self.until.get(key, float("-inf"))

    def failed(self, key: str, now: float) -> tuple[int, float]:
        """Count a failure; returns how many in a row, and the wait before the next try."""
        count = self.failures.get(key, 0) + 1
        wait = min(MOST_S, FIRST_S * 2 ** (count - 1))
        self.failures[key], self.until[key] = count, now + wait
        return count, wait

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)
        self.until.pop(key, None)


@dataclass
class Isolation:
    """Runs one decision about one key, keeping its failure to itself."""

    decider: Decider
    journal: Journal
    log: StructLog
    quarantine: Quarantine = field(default_factory=Quarantine)

    async def decide(self, key: str, now: float, work: Callable[[], Awaitable[object]]) -> None:
        if not self.quarantine.ready(key, now):
            return
        try:
            await work()
        except Exception as exc:
            count, wait = self.quarantine.failed(key, now)
            self.log.error(
                "decision failed; this one backs off", subject=key, error=repr(exc)[:500]
            )
            if count == 1:
                await self._report(key, exc, wait)
            return
        self.quarantine.succeeded(key)

    async def _report(self, key: str, exc: Exception, wait: float) -> None:
        failed = DecisionFailed(subject=key, decider=self.decider, error=repr(exc), retry_in_s=wait)
        try:
            await self.journal.publish(failed)
        except Exception as again:  # the report is a courtesy; the log has it anyway
            self.log.error("could not report a failed decision", error=repr(again)[:500])
