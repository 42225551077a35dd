"""Chaos under load, on real Kafka and Docker with the whole platform as processes: while
a function with two replicas serves a steady load spread over the api instances, a random
instance of a random service (the api, scheduler, autoscaler or healer; `--instances` of
each, 2 by default; one decider of each role leads) is SIGKILLed every 10 s and another
started in its place (as `shoal up`'s supervisor would; an api on the same port), for 2
minutes (`--quick`: 30 s); then a function is scaled from zero, and the log is checked
(`shoal audit --check`). The load's client balances over the apis as a load balancer
would: an api that refuses connections is left out for a second, and a call whose
connection broke is tried once on another (Envoy's `retry_on: reset,connect-failure`).

The baseline, in the same run, is the same load for the same time with no kill. Printed:
requests, failures and the success ratio of each phase (Knative's bar while autoscaling is
>= 0.999; the goal here is 1.0), the worst time a killed service took to be ready again,
how long the scale from zero took after the chaos, and the log's violations."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import time
from collections import Counter
from typing import Any

import aiohttp

from bench.broker import bench_platform
from events.history import HISTORY_TOPICS, ReadCounts, read_all
from events.invariants import check
from tests.support.leaders import leader_of, leads
from tests.support.platform import AUTH, Platform
from tests.support.service_process import ServiceProcess
from tests.support.spread import SpreadLoad, spread_load

KILL_EVERY_S = 10.0


async def deploy(api: str, name: str, **spec: Any) -> None:
    body = {"name": name, "image": "shoal-test/hello:1", "cpu": 0.1, "memory_mb": 32, **spec}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api}/v1/functions", json=body, headers=AUTH) as reply,
    ):
        assert reply.status == 201, await reply.text()


async def ready(api: str, name: str, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(headers=AUTH) as http:
        while time.monotonic() < deadline:
            async with http.get(f"{api}/v1/functions/{name}") as reply:
                if (await reply.json()).get("ready") == count:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} not {count} ready in {timeout_s} s")


async def kill_and_restart(part: ServiceProcess, name: str) -> tuple[ServiceProcess, float]:
    """SIGKILL, then another in its place on its ports; seconds until it is ready."""
    assert part.process is not None
    part.process.send_signal(signal.SIGKILL)
    await part.process.wait()
    started = time.monotonic()
    successor = await part.successor(name, same_ports=True).start(timeout_s=120)
    return successor, time.monotonic() - started


async def chaos(
    victims: dict[str, list[ServiceProcess]], seconds: float, rng: random.Random
) -> list[tuple[str, float]]:
    """Every KILL_EVERY_S, SIGKILL a random instance of a random decider and start another
    in its place. With one instance of a role, the recovery is the time until the new
    one is ready; with two or more, until the role has a leader again (0 when a standby
    was killed)."""
    recoveries = []
    deadline = time.monotonic() + seconds
    kills = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(KILL_EVERY_S, max(0.0, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            break
        role = rng.choice(sorted(victims))
        instances = victims[role]
        kills += 1
        if len(instances) == 1 or role == "api":
            victim = rng.choice(instances)
            back = await kill_and_restart(victim, f"{role}-k{kills}")
            instances[instances.index(victim)] = back[0]
            recoveries.append((role, back[1]))
            continue
        victim = rng.choice(instances)
        what = "leader" if await leads(victim, role) else "standby"
        recoveries.append((f"{role} {what}", await replace(instances, victim, kills)))
    return recoveries


def deciders(platform: Platform) -> dict[str, list[ServiceProcess]]:
    """The platform's decider instances by role (a bench adds more)."""
    return {
        "scheduler": [platform.scheduler],
        "autoscaler": [platform.autoscaler],
        "healer": [platform.healer],
    }


async def stop_added(instances: dict[str, list[ServiceProcess]], platform: Platform) -> None:
    """Stop every instance a bench started (the platform stops its own)."""
    own = {id(platform.scheduler), id(platform.autoscaler), id(platform.healer), id(platform.api)}
    for process in (p for started in instances.values() for p in started):
        if id(process) not in own:
            await process.stop()


async def replace(instances: list[ServiceProcess], victim: ServiceProcess, n: int) -> float:
    """SIGKILL one of a role's instances; seconds until one of the others leads."""
    role = victim.module
    assert victim.process is not None
    killed = time.monotonic()
    victim.process.kill()
    others = [p for p in instances if p is not victim]
    await leader_of(role, *others, timeout_s=30)
    took = time.monotonic() - killed
    await victim.process.wait()
    successor = victim.successor(f"{role}-k{n}")
    await successor.start(timeout_s=120)
    instances[instances.index(victim)] = successor
    return took


async def phase(apis: list[str], seconds: float, work: Any) -> tuple[SpreadLoad, Any]:
    async with spread_load(apis, "/fn/warm/", workers=4, retry_resets=True) as load:
        result = await work(seconds)
    return load, result


async def from_zero(api: str) -> float:
    await deploy(api, "cold", min_replicas=0, initial_scale=0)
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http,
        http.get(f"{api}/fn/cold/") as reply,
    ):
        assert reply.status == 200, await reply.text()
    return time.monotonic() - started


async def run(seconds: float, seed: int, instances: int) -> dict[str, Any]:
    async with bench_platform("c", agents=2) as (platform, bus):
        api = platform.api.url
        await deploy(api, "warm", min_replicas=2, max_replicas=2, initial_scale=2)
        await ready(api, "warm", 2)
        victims = deciders(platform) | {"api": [platform.api]}
        for role, started in victims.items():
            for n in range(2, instances + 1):
                started.append(started[0].successor(f"{role}-{n}"))
                await started[-1].start()
        apis = [p.url for p in victims["api"]]
        base, _ = await phase(apis, seconds, asyncio.sleep)
        rng = random.Random(seed)
        hit, recoveries = await phase(apis, seconds, lambda s: chaos(victims, s, rng))
        after = await from_zero(victims["api"][-1].url)
        await asyncio.sleep(2)
        found = check(await read_all(bus, HISTORY_TOPICS, ReadCounts()), grace_s=0)
        await stop_added(victims, platform)
    return {
        "baseline": base,
        "chaos": hit,
        "recoveries": recoveries,
        "from_zero": after,
        "violations": len(found.violations),
        "instances": instances,
    }


def report(found: dict[str, Any], seconds: float) -> None:
    print(f"{'phase':<10} {'seconds':>8} {'requests':>9} {'failed':>7} {'success':>9}")
    for name in ("baseline", "chaos"):
        load: SpreadLoad = found[name]
        total, ratio = load.count(), load.ratio()
        failed = total - sum(a.status == 200 for a in load.answers)
        print(f"{name:<10} {seconds:>8.0f} {total:>9} {failed:>7} {ratio:>9.5f}")
    failed_how = Counter(
        f"{a.status} {a.body[:80]!r}" for a in found["chaos"].answers if a.status != 200
    )
    for how, n in failed_how.most_common(5):
        print(f"failed {n:>5}x  {how}")
    recoveries = found["recoveries"]
    for name, took in recoveries:
        print(f"killed {name:<19} back (ready, or led by another) after {took:.2f} s")
    worst = max((took for _, took in recoveries), default=0.0)
    print(f"scaled from zero after the chaos in {found['from_zero']:.2f} s")
    print(f"shoal audit --check: {found['violations']} violation(s)")
    print(
        json.dumps(
            {
                "success_ratio": round(found["chaos"].ratio(), 6),
                "requests": found["chaos"].count(),
                "baseline_success_ratio": round(found["baseline"].ratio(), 6),
                "kills": len(recoveries),
                "worst_recovery_s": round(worst, 3),
                "scaled_from_zero_after": round(found["from_zero"], 3),
                "violations": found["violations"],
                "instances": found["instances"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="30 s of chaos, not 2 minutes")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument(
        "--instances",
        type=int,
        default=2,
        help="instances of the api and of each decider (1: the old way)",
    )
    args = parser.parse_args()
    seconds = 30.0 if args.quick else 120.0
    report(asyncio.run(run(seconds, args.seed, args.instances)), seconds)


if __name__ == "__main__":
    main()
