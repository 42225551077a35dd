"""Which instance of a decider leads, from its /metrics (`shoal_leader`)."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp

from tests.support.service_process import ServiceProcess

LEADING = re.compile(r'^shoal_leader\{instance="[^"]+",role="(\w+)"\} 1\.0$', re.M)


async def leads(process: ServiceProcess, role: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{process.url}/metrics") as reply:
            return role in LEADING.findall(await reply.text())
    except aiohttp.ClientError:
        return False


async def leader_of(
    role: str, *instances: ServiceProcess, timeout_s: float = 15, woken: bool = False
) -> ServiceProcess:
    """The one instance that leads. Two never may, except just after a paused leader
    wakes (`woken`): it believes it leads until its next heartbeat tells it otherwise,
    and what it sends meanwhile is fenced."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p for p in instances if await leads(p, role)]
        if len(found) == 1:
            return found[0]
        assert woken or len(found) < 2, "two instances lead at once"
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {role} instance leads after {timeout_s} s")


EPOCH = re.compile(r'^shoal_leader_epoch\{instance="([^"]+)",role="(\w+)"\} (\d+)\.0$', re.M)


async def epoch_of(process: ServiceProcess, role: str) -> tuple[str, int]:
    """The instance name of a leading process and the epoch it leads with."""
    async with aiohttp.ClientSession() as http, http.get(f"{process.url}/metrics") as reply:
        text = await reply.text()
    found = [(name, int(epoch)) for name, r, epoch in EPOCH.findall(text) if r == role]
    assert len(found) == 1, f"no single {role} epoch in {process.url}/metrics"
    return found[0]
