"""Steady request load on a function through the api, recording every answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

REVISION = "Shoal-Revision"


@dataclass
class Load:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    answers: list[tuple[float, int, str]] = field(default_factory=list)
    """(wall-clock time, status, the revision that answered) of each answer."""

    def revisions(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """Answers per revision (its Shoal-Revision header) between two times."""
        return Counter(r for t, _, r in self.answers if since <= t <= until)

    def failed_share(self, since: float, until: float) -> tuple[int, int]:
        """(failed, all) answers between two wall-clock times."""
        window = [s for t, s, _ in self.answers if since <= t <= until]
        return sum(1 for s in window if s != 200), len(window)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def success_ratio(self) -> float:
        """Answers of 200 among all calls, those that got no answer included."""
        calls = self.total + len(self.failures)
        return self.statuses.get(200, 0) / calls if calls else 0.0

    def assert_no_failures(self) -> None:
        bad = {code: n for code, n in self.statuses.items() if code != 200}
        assert not bad and not self.failures, (
            f"{bad} of {self.total} requests failed: {self.failures[:5]}"
        )


@contextlib.asynccontextmanager
async def workers_running(
    step: Callable[[aiohttp.ClientSession], Awaitable[None]], workers: int, pause_s: float
) -> AsyncIterator[None]:
    """`workers` loops each doing `step` (then a pause) until the block ends."""
    stop = asyncio.Event()

    async def worker(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            await step(http)
            await asyncio.sleep(pause_s)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        tasks = [asyncio.create_task(worker(http)) for _ in range(workers)]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def steady_load(url: str, workers: int = 4, pause_s: float = 0.01) -> AsyncIterator[Load]:
    """`workers` loops calling `url` until the block ends."""
    load = Load()

    async def call(http: aiohttp.ClientSession) -> None:
        try:
            async with http.get(url) as reply:
                body = await reply.read()
                load.statuses[reply.status] += 1
                load.answers.append((time.time(), reply.status, reply.headers.get(REVISION, "")))
                if reply.status != 200:
                    load.failures.append(f"{reply.status} {body[:200]!r}")
        except aiohttp.ClientError as exc:
            load.failures.append(repr(exc))

    async with workers_running(call, workers, pause_s):
        yield load
