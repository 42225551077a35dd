"""How a replica leaves: its drain ends once the routers have had time to hear of it and
it has no request in flight (no connection open to it), or when its whole drain time has
passed; then its container is stopped, again and again if the engine fails to."""

from __future__ import annotations

import asyncio

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from services.common.clock import Clock
from services.common.logs import StructLog
from services.node_agent.replica import Replica
from services.node_agent.runtime import ReplicaRuntime

LOOK_S = 0.1
QUIET_LOOKS = 2
"""Looks in a row with no connection open that end a drain early."""
STOP_ATTEMPTS = 8
STOP_RETRY_MAX_S = 30.0
IDLE_CORES = 0.001
"""CPU use below which a replica with no connection open counts as idle."""


def drain_over(elapsed: float, *, drain_s: float, min_s: float, quiet_looks: int) -> bool:
    """Whether a drain begun `elapsed` seconds ago ends: at `drain_s` at the latest; from
    `min_s` on (the time the routers take to hear of it) once the replica was seen with
    no connection open QUIET_LOOKS times in a row."""
    return elapsed >= drain_s or (elapsed >= min_s and quiet_looks >= QUIET_LOOKS)


def is_busy(connections: int | None, cpu_cores: float) -> bool:
    """In use at the last look: a connection open to it, or CPU used."""
    return bool(connections) or cpu_cores >= IDLE_CORES


async def wait_drained(
    runtime: ReplicaRuntime, replica_id: str, *, drain_s: float, min_s: float, clock: Clock
) -> None:
    """Until the drain is over (see `drain_over`); a replica whose connections cannot be
    seen drains for its whole time."""
    began, quiet = clock.now(), 0
    while not drain_over(clock.now() - began, drain_s=drain_s, min_s=min_s, quiet_looks=quiet):
        await asyncio.sleep(max(0.0, min(LOOK_S, drain_s - (clock.now() - began))))
        left = max(0.01, drain_s - (clock.now() - began))
        try:  # a look slow to answer (the engine busy) never lengthens the drain
            seen = await asyncio.wait_for(runtime.connections(replica_id), timeout=left)
        except TimeoutError:
            seen = None
        quiet = quiet + 1 if seen == 0 else 0


async def stop_surely(runtime: ReplicaRuntime, replica: Replica, log: StructLog) -> None:
    """Stop the replica's container within its grace, trying again with back-off while the
    engine fails or does not answer in time (a container left would hold its room)."""
    replica_id, grace_s = replica.replica_id, replica.command.spec.stop_grace_s
    retrying = AsyncRetrying(
        wait=wait_exponential(multiplier=1, max=STOP_RETRY_MAX_S),
        stop=stop_after_attempt(STOP_ATTEMPTS),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "stop failed, trying again",
            replica=replica_id,
            error=str(state.outcome.exception() if state.outcome else "")[:200],
        ),
    )
    async for attempt in retrying:
        with attempt:
            await runtime.stop(replica_id, timeout_s=grace_s)
