"""Which of a process's loops are alive: each beats as it goes round, and `/healthz` fails
when one has not beaten for longer than it may, so that whatever runs the process
restarts it rather than keep a zombie with healthy heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.common.clock import SYSTEM_CLOCK, Clock
from services.common.logs import StructLog

RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0


@dataclass
class Liveness:
    clock: Clock
    beats: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Loop -> (when it last beat, how long it may go without)."""

    def beat(self, loop: str, *, within_s: float = 60.0) -> None:
        self.beats[loop] = (self.clock.now(), within_s)

    def stalled(self) -> list[str]:
        now = self.clock.now()
        return sorted(name for name, (at, within) in self.beats.items() if now - at > within)


async def supervised(
    name: str,
    work: Callable[[], Awaitable[None]],
    *,
    log: StructLog,
    stop: asyncio.Event,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Run `work` until `stop`; when it raises or returns, log it and run it again after a
    back-off (0.5 s, doubling to 30 s, and back to 0.5 s after a run that lasted longer
    than that), so that one failure never ends a loop for good nor spins it."""
    delay = RESTART_FIRST_S
    while not stop.is_set():
        began = clock.now()
        try:
            await work()
            outcome = "loop returned"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = repr(exc)[:500]
        if stop.is_set():
            return
        if clock.now() - began > RESTART_MAX_S:
            delay = RESTART_FIRST_S
        log.error("loop ended; starting it again", loop=name, error=outcome, after_s=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(RESTART_MAX_S, delay * 2)
