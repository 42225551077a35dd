"""Waiting on a condition the way a user polls a system: every POLL_S, within a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

POLL_S = 0.2


async def until(
    check: Callable[[], Awaitable[bool]], began: float, timeout_s: float = 300
) -> float:
    """Seconds from `began` (a monotonic time) until `check` holds, polled every POLL_S."""
    while not await check():
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"not done within {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - began


async def at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n


async def at_most(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() <= n


async def answers(http: aiohttp.ClientSession, url: str) -> bool:
    """Whether one GET of `url` gets a 200 within a second."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as reply:
            return reply.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False
