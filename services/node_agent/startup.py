"""The end of a replica's start: why it is not ready, and its own CPU limit put in force
once it is (it started with the node's startup boost)."""

from __future__ import annotations

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from services.node_agent.replica import Replica
from services.node_agent.runtime import ReplicaRuntime

SETTLE_ATTEMPTS = 3


def not_ready(replica: Replica) -> str:
    command = replica.command
    probe = command.spec.readiness_path or "tcp"
    return f"not ready within {command.ready_timeout_s:g} s (probe {probe} on {replica.endpoint})"


async def settled(runtime: ReplicaRuntime, replica: Replica) -> str | None:
    """None once the replica runs within its own CPU limit; else why not (the engine kept
    failing): a replica is never ready with more CPU than its spec allows."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(SETTLE_ATTEMPTS),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                await runtime.settle(replica.replica_id, cpu=replica.command.spec.cpu)
    except Exception as exc:
        return f"its CPU limit could not be put in force after its start: {exc}"[:500]
    return None
