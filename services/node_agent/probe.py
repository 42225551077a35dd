"""Readiness probes: HTTP GET on the readiness path (200-399 is ready), or a TCP connect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from services.common.clock import Clock

HTTP_TIMEOUT_S = 1.0
FAST_PROBING_S = 2.0
SLOW_PROBE_S = 0.25


async def probe_once(http: aiohttp.ClientSession, endpoint: str, path: str) -> bool:
    if not endpoint.startswith("http"):
        return True
    if not path:
        host, port = endpoint.split("://", 1)[1].rsplit(":", 1)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True
    try:
        async with http.get(
            endpoint + path,
            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S),
            allow_redirects=False,
        ) as response:
            return 200 <= response.status < 400
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_until_ready(
    http: aiohttp.ClientSession,
    endpoint: str,
    path: str,
    *,
    timeout_s: float,
    interval_s: float,
    still_wanted: Callable[[], bool],
    clock: Clock,
) -> bool:
    """Probe until ready (True), or until the deadline or the replica is no longer wanted."""
    started = clock.now()
    deadline = started + timeout_s
    while still_wanted():
        if await probe_once(http, endpoint, path):
            return True
        now = clock.now()
        if now >= deadline:
            return False
        # Probe fast while a cold start is likely to finish, then back off to spare the host.
        await asyncio.sleep(interval_s if now - started < FAST_PROBING_S else SLOW_PROBE_S)
    return False
