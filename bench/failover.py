"""Failover of the deciders, on real Kafka and Docker with the whole platform as processes:
two instances of each of the scheduler, autoscaler and healer; under a steady load on a
function with two replicas, the instance that leads a role is SIGKILLed, the time until
the other leads is measured, and the killed one is started again (as `shoal up`'s
supervisor would) before the next kill; roles in turn, `--rounds` each (`--quick`: 2).

Baselines, in the same run: a single instance of each role killed and started again (what
the supervisor alone gives, on a live host), and Kubernetes' Lease defaults (a killed
leader is replaced within about 15 s). Printed: failover per kill, p50 and max per role,
the success ratio of the load, and what `shoal audit --check` finds in the log."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from typing import Any

from bench.broker import bench_platform
from bench.chaos import (
    deciders,
    deploy,
    kill_and_restart,
    ready,
    replace,
    stop_added,
)
from events.history import HISTORY_TOPICS, ReadCounts, read_all
from events.invariants import check
from tests.support.leaders import leader_of
from tests.support.load import Load, steady_load
from tests.support.service_process import ServiceProcess

ROLES = ("scheduler", "autoscaler", "healer")
KUBERNETES_LEASE_S = 15.0


async def fail_over(pair: list[ServiceProcess], role: str, generation: int) -> float:
    """Kill the leader, time until the other leads, start a new instance in its place."""
    return await replace(pair, await leader_of(role, *pair), generation)


async def run(rounds: int) -> dict[str, Any]:
    async with bench_platform("f") as (platform, bus):
        api = platform.api.url
        await deploy(api, "warm", min_replicas=2, max_replicas=2, initial_scale=2)
        await ready(api, "warm", 2)
        pairs = deciders(platform)
        restarts = {}
        for role in ROLES:
            pairs[role][0], restarts[role] = await kill_and_restart(pairs[role][0], f"{role}-r")
        for role in ROLES:
            second = pairs[role][0].successor(f"{role}-2")
            await second.start()
            pairs[role].append(second)
        failovers: dict[str, list[float]] = {role: [] for role in ROLES}
        async with steady_load(f"{api}/fn/warm/") as load:
            for n in range(rounds):
                for role in ROLES:
                    failovers[role].append(await fail_over(pairs[role], role, n + 3))
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        found = check(await read_all(bus, HISTORY_TOPICS, ReadCounts()), grace_s=0)
        await stop_added(pairs, platform)
    return {"restarts": restarts, "failovers": failovers, "load": load, "check": found}


def report(found: dict[str, Any]) -> None:
    failovers: dict[str, list[float]] = found["failovers"]
    print(
        f"{'role':<11} {'kills':>5} {'p50 s':>7} {'max s':>7} {'restart s':>10} {'k8s lease s':>12}"
    )
    for role, took in failovers.items():
        print(
            f"{role:<11} {len(took):>5} {statistics.median(took):>7.2f} {max(took):>7.2f} "
            f"{found['restarts'][role]:>10.2f} {KUBERNETES_LEASE_S:>12.0f}"
        )
    every = [t for took in failovers.values() for t in took]
    load: Load = found["load"]
    failed = load.total - load.statuses.get(200, 0) + len(load.failures)
    print(f"load: {load.total} requests, {failed} failed, success ratio {load.success_ratio():.5f}")
    violations = found["check"].violations
    print(f"shoal audit --check: {sum(found['check'].checked.values())} checked, "
          f"{len(violations)} violation(s)")  # fmt: skip
    for violation in violations:
        print(f"  {violation.rule}: {violation.text}")
    print(
        json.dumps(
            {
                "failover_s_p50": round(statistics.median(every), 3),
                "failover_s_max": round(max(every), 3),
                "success_ratio": round(load.success_ratio(), 6),
                "violations": len(violations),
                "kills": len(every),
                "restart_s_p50": round(statistics.median(found["restarts"].values()), 3),
                "kubernetes_lease_s": KUBERNETES_LEASE_S,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 kills of each role's leader")
    parser.add_argument("--rounds", type=int, default=5, help="kills of each role's leader")
    args = parser.parse_args()
    report(asyncio.run(run(2 if args.quick else args.rounds)))


if __name__ == "__main__":
    main()
