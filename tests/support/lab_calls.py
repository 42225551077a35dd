"""Calls on a lab (`services.local.lab`) from its tests and its benchmark: its api's
control plane, waiting for a condition, and which host's scheduler leads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from events.bus import EventProducer
from events.types import ColdStartDemand
from services.local.lab import Lab

PROBE = "lab-probe"
"""The function named by the probe's demand events: the key that picks their partition."""


def api(lab: Lab) -> str:
    return f"http://{lab.plan.host(1).address}:8080"


async def control(lab: Lab, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    headers = {"Authorization": f"Bearer {lab.api_token()}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{api(lab)}/v1{path}", json=body, headers=headers) as reply,
    ):
        assert reply.status == expect, await reply.text()
        return await reply.json()


async def until(probe: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.3)


async def ready_on(lab: Lab, name: str) -> list[str]:
    """The nodes of the function's ready replicas."""
    status = await control(lab, "GET", f"/functions/{name}")
    return sorted(r["node"] for r in status.get("replicas", []) if r.get("state") == "ready")


async def api_answers(lab: Lab) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{api(lab)}/readyz") as reply:
            return reply.status == 200
    except aiohttp.ClientError:
        return False


async def when(found: Any, good: Any) -> Any:
    value = await found
    return value if good(value) else None


async def leading(hosts: list[Any]) -> Any:
    """The one host whose scheduler says it leads (None while none or two do)."""
    found = []
    for host in hosts:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                http.get(f"http://{host.address}:9102/metrics") as reply,
            ):
                text = await reply.text()
        except (aiohttp.ClientError, TimeoutError):
            continue
        if 'role="scheduler"} 1.0' in text and "shoal_leader{" in text:
            found.append(host)
    return found[0] if len(found) == 1 else None


async def produce_acked(
    producer: EventProducer, acked: list[str], seconds: float, *, at_least: int = 0
) -> float:
    """Events sent one at a time for `seconds`, and on until `at_least` were acknowledged
    (for at most 30 s more), each id kept once Kafka acknowledged it; returns the
    longest wait for an acknowledgement."""
    longest = 0.0
    started = time.monotonic()
    while not _enough(time.monotonic() - started, len(acked), seconds, at_least):
        envelope = producer.envelope(
            ColdStartDemand(function=PROBE, api_instance="test", queued=len(acked))
        )
        sent = time.monotonic()
        await (await producer.send(envelope))
        longest = max(longest, time.monotonic() - sent)
        acked.append(envelope.id)
        await asyncio.sleep(0.02)
    return longest


def _enough(elapsed: float, acked: int, seconds: float, at_least: int) -> bool:
    return elapsed >= seconds + 30 or (elapsed >= seconds and acked >= at_least)


async def lab_ready(lab: Lab, timeout_s: float = 120) -> None:
    """The lab's api answers, and every host's node-agent has said it is there."""
    await until(lambda: api_answers(lab), timeout_s, "the lab's api answers")
    hosts = {h.name for h in lab.plan.all_hosts}

    async def nodes_up() -> bool:
        listed = await control(lab, "GET", "/nodes")
        return hosts <= {n["node"] for n in listed["nodes"] if not n["lost"]}

    await until(nodes_up, timeout_s, "every host's node-agent is known")
