"""Progressive delivery under steady load, on real Kafka and Docker with the whole platform
as processes: a revision that answers 500 to every call, deployed with the canary strategy
(steps 5% -> 25% -> 50%), timed from its first step to its automatic rollback, with the
share of calls that failed in that window; then a healthy revision, timed from its
deployment to 100%, with its failed calls.

Baseline, in the same run: the same failing revision deployed with the immediate strategy
(today's default, and what a Kubernetes Deployment does): every call fails from the moment
it is ready until a person rolls it back (here after `--exposure-s`). `--quick`: steps of
5 s and 10 s of exposure; the full run uses the spec's default step (30 s)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.broker import bench_platform
from bench.chaos import deploy, ready
from events.topics import FUNCTIONS, SCALE
from events.types import CanaryAnalysed, FunctionRolledBack, FunctionUpdated
from tests.support.event_log import EventLog
from tests.support.load import Load, steady_load
from tests.support.platform import call

FAIL = {"image": "shoal-test/fail:1", "readiness_path": ""}


def first_time(log: EventLog, kind: type, where: Any) -> float:
    """The wall-clock time of the first event of a kind that matches."""
    return next(
        e.time.timestamp() for e in log.events if isinstance(e.data, kind) and where(e.data)
    )


async def replace(api: str, spec: dict[str, Any], **fields: Any) -> int:
    """A new revision of "shop"; returns its number."""
    status = await call("PUT", f"{api}/v1/functions/shop", {**spec, **fields})
    return int(status["revision"])


async def baseline(
    api: str, log: EventLog, load: Load, spec: dict[str, Any], exposure_s: float
) -> float:
    """The failed share of calls while an immediate failing revision serves, until rolled back."""
    revision = await replace(api, spec, **FAIL, rollout="immediate")
    await log.wait_for(FunctionUpdated, lambda e: e.revision == revision)
    started = time.time()
    await asyncio.sleep(exposure_s)
    ended = time.time()
    await call("POST", f"{api}/v1/functions/shop/rollback", {"revision": 1})
    for _ in range(300):  # at most 60 s: until the first revision answers again
        if load.answers and load.answers[-1][1] == 200 and load.answers[-1][2] == "1":
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    failed, total = load.failed_share(started, ended)
    return failed / max(total, 1)


async def canary_rollback(
    api: str, log: EventLog, load: Load, spec: dict[str, Any]
) -> tuple[float, float]:
    revision = await replace(api, spec, **FAIL)
    await log.wait_for(FunctionRolledBack, lambda e: e.from_revision == revision, timeout_s=300)
    first = first_time(log, CanaryAnalysed, lambda e: e.revision == revision)
    back = first_time(log, FunctionRolledBack, lambda e: e.from_revision == revision)
    await asyncio.sleep(1)
    failed, total = load.failed_share(first, back + 1)
    return back - first, failed / max(total, 1)


async def promotion(api: str, log: EventLog, load: Load, spec: dict[str, Any]) -> tuple[float, int]:
    started = time.time()
    revision = await replace(api, spec, env={"V": "healthy"})
    await log.wait_for(
        CanaryAnalysed, lambda e: e.revision == revision and e.percent == 100, timeout_s=600
    )
    done = first_time(log, CanaryAnalysed, lambda e: e.revision == revision and e.percent == 100)
    return done - started, load.failed_share(started, done)[0]


async def run(step_s: float, exposure_s: float) -> dict[str, Any]:
    spec = {
        "image": "shoal-test/hello:1",
        "cpu": 0.1,
        "memory_mb": 32,
        "min_replicas": 2,
        "initial_scale": 2,
        "rollout": "canary",
        "canary_step_s": step_s,
    }
    async with bench_platform("c", SHOAL_HEALER_TICK_S="0.5") as (platform, bus):
        api = platform.api.url
        await deploy(api, "shop", **spec)
        await ready(api, "shop", 2)
        async with EventLog(bus, [FUNCTIONS, SCALE]) as log, steady_load(f"{api}/fn/shop/") as load:
            await asyncio.sleep(2)
            exposed = await baseline(api, log, load, spec, exposure_s)
            rollback_s, failed_ratio = await canary_rollback(api, log, load, spec)
            promote_s, promote_failed = await promotion(api, log, load, spec)
    return {
        "rollback_s": round(rollback_s, 2),
        "failed_ratio": round(failed_ratio, 4),
        "promote_s": round(promote_s, 2),
        "promote_failed": promote_failed,
        "baseline_failed_ratio": round(exposed, 4),
        "baseline_exposure_s": exposure_s,
        "step_s": step_s,
        "calls": load.total,
    }


def report(found: dict[str, Any]) -> None:
    print(f"{'':<44}{'failed share':>14}{'time (s)':>10}")
    print(
        f"{'immediate, failing revision (baseline)':<44}"
        f"{found['baseline_failed_ratio']:>14.1%}{found['baseline_exposure_s']:>10.1f}"
        "  (until rolled back by hand)"
    )
    print(
        f"{'canary, failing revision -> rolled back':<44}"
        f"{found['failed_ratio']:>14.1%}{found['rollback_s']:>10.2f}  (first step to rollback)"
    )
    print(
        f"{'canary, healthy revision -> 100%':<44}"
        f"{found['promote_failed']:>14}{found['promote_s']:>10.2f}"
        f"  (failed calls; deploy to 100%, steps of {found['step_s']:g} s)"
    )
    print(f"{found['calls']} calls in all")
    print(json.dumps(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s steps, 10 s of exposure")
    parser.add_argument("--step-s", type=float, default=30.0)
    parser.add_argument("--exposure-s", type=float, default=30.0)
    args = parser.parse_args()
    step_s, exposure_s = (5.0, 10.0) if args.quick else (args.step_s, args.exposure_s)
    report(asyncio.run(run(step_s, exposure_s)))


if __name__ == "__main__":
    main()
