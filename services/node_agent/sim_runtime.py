"""Pretend replicas for hollow nodes (as kubemark does for Kubernetes): the same agent and
events, but nothing runs; a replica is ready after a delay and uses synthetic CPU."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from events.types import StartReplica
from services.node_agent.runtime import Exit, Resync, Running
from services.node_agent.usage import Usage


@dataclass
class _Pretend:
    command: StartReplica
    port: int


class SimRuntime:
    def __init__(self, *, node_id: str, ready_delay_s: float, cpu_fraction: float) -> None:
        self.available = True
        self.node_id = node_id
        self.ready_delay_s = ready_delay_s
        self.cpu_fraction = cpu_fraction
        self._replicas: dict[str, _Pretend] = {}
        self._exits: asyncio.Queue[Exit | None] = asyncio.Queue()

    async def start(self, command: StartReplica, *, port: int) -> str:
        await asyncio.sleep(self.ready_delay_s)
        self._replicas[command.replica_id] = _Pretend(command, port)
        return self.endpoint_for(port)

    def endpoint_for(self, port: int) -> str:
        return f"sim://{self.node_id}:{port}"

    def port_is_free(self, port: int) -> bool:
        return True

    async def stop(self, replica_id: str, *, timeout_s: float) -> None:
        self._replicas.pop(replica_id, None)

    async def owned(self) -> list[Running]:
        return [
            Running(
                replica_id=r.command.replica_id,
                function=r.command.function,
                revision=r.command.revision,
                port=r.port,
                running=True,
                node_generation=r.command.node_generation,
            )
            for r in self._replicas.values()
        ]

    async def exits(self) -> AsyncIterator[Exit | Resync]:
        while (item := await self._exits.get()) is not None:
            yield item

    def crash(self, replica_id: str, exit_code: int = 1) -> None:
        """Pretend the replica's process died (for tests of the control plane)."""
        if self._replicas.pop(replica_id, None) is not None:
            self._exits.put_nowait(
                Exit(
                    replica_id=replica_id,
                    exit_code=exit_code,
                    oom_killed=False,
                    last_logs=[],
                    removed=False,
                )
            )

    async def usage(self, replica_id: str, *, cpu_limit: float) -> Usage | None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            return None
        return Usage(
            cpu_cores=self.cpu_fraction * cpu_limit,
            cpu_fraction_of_limit=self.cpu_fraction,
            memory_bytes=replica.command.spec.memory_mb << 19,
            memory_limit_bytes=replica.command.spec.memory_mb << 20,
        )

    async def settle(self, replica_id: str, *, cpu: float) -> None:
        pass  # a pretend replica has no limit to lower

    async def connections(self, replica_id: str) -> int | None:
        return None  # pretend replicas take no calls: a drain lasts its whole time

    async def close(self) -> None:
        self._exits.put_nowait(None)
