"""Load spread over several api instances as a load balancer in front of them would: each
request goes to the next instance in turn; one that refuses the connection (the request
was never sent) is left out, and the request goes to another; the one left out comes back
once its /readyz answers 200 (a Kubernetes Service's endpoints follow readiness so). Every answer is
recorded with when it came. With `retry_resets`, a call whose connection broke after it
was sent is tried once more on another instance, as Envoy's `retry_on: reset` does for
idempotent calls (the loads here are GETs)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from tests.support.load import workers_running

OUT_FOR_S = 1.0


@dataclass
class Answer:
    at: float
    api: str
    status: int
    """0: no answer (the connection broke after the request was sent)."""
    body: bytes = b""


@dataclass
class SpreadLoad:
    urls: list[str]
    retry_resets: bool = False
    answers: list[Answer] = field(default_factory=list)
    out_until: dict[str, float] = field(default_factory=dict)
    """Instances left out: until when, after which /readyz is asked before they serve."""
    _turn: int = 0

    def ratio(self, since: float = float("-inf"), until: float = float("inf")) -> float:
        """The share of answers in [since, until) that were 200."""
        window = [a for a in self.answers if since <= a.at < until]
        return sum(a.status == 200 for a in window) / len(window) if window else 1.0

    def count(self, since: float = float("-inf"), until: float = float("inf")) -> int:
        return sum(since <= a.at < until for a in self.answers)

    def served_by(self, url: str) -> int:
        return sum(a.api == url and a.status == 200 for a in self.answers)

    def _next(self) -> list[str]:
        self._turn += 1
        now = time.monotonic()
        order = self.urls[self._turn % len(self.urls) :] + self.urls[: self._turn % len(self.urls)]
        return [u for u in order if self.out_until.get(u, 0) <= now] or order

    async def _back(self, http: aiohttp.ClientSession, url: str) -> bool:
        """Whether an instance left out may serve again: it says it is ready."""
        if url not in self.out_until:
            return True
        try:
            async with http.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                ready = r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ready = False
        if ready:
            self.out_until.pop(url, None)
        else:
            self.out_until[url] = time.monotonic() + OUT_FOR_S
        return ready

    async def one(self, http: aiohttp.ClientSession, path: str) -> Answer:
        resets = 0
        for url in self._next():
            if not await self._back(http, url):
                continue
            try:
                async with http.get(f"{url}{path}") as reply:
                    return Answer(time.monotonic(), url, reply.status, await reply.read())
            except aiohttp.ClientConnectorError:
                self.out_until[url] = time.monotonic() + OUT_FOR_S
            except (aiohttp.ClientError, TimeoutError) as exc:
                if not self.retry_resets or resets or isinstance(exc, TimeoutError):
                    return Answer(time.monotonic(), url, 0, repr(exc).encode())
                resets += 1
                self.out_until[url] = time.monotonic() + OUT_FOR_S
        return Answer(time.monotonic(), "", 0, b"every api refused the connection")


@contextlib.asynccontextmanager
async def spread_load(
    urls: list[str], path: str, workers: int = 6, pause_s: float = 0.01, retry_resets: bool = False
) -> AsyncIterator[SpreadLoad]:
    """`workers` loops calling `path` on the apis at `urls` until the block ends."""
    load = SpreadLoad(list(urls), retry_resets)

    async def call(http: aiohttp.ClientSession) -> None:
        load.answers.append(await load.one(http, path))

    async with workers_running(call, workers, pause_s):
        yield load
