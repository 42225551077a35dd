"""What a node runs replicas on: real Docker containers, or pretend ones (hollow nodes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from events.types import StartReplica
from services.node_agent.usage import Usage


class RuntimeStartError(RuntimeError):
    """The replica could not be created or started for a reason of its own spec (its image
    is missing, the engine refused its settings); the message says why."""


@dataclass(frozen=True)
class Running:
    """A replica the runtime knows about (what `docker ps` with our labels shows)."""

    replica_id: str
    function: str
    revision: int
    port: int
    running: bool
    node_generation: int = 0
    """The generation of the node it was placed in (from its start command, kept in a label)."""


@dataclass(frozen=True)
class Exit:
    """A replica's container ended without being asked to."""

    replica_id: str
    exit_code: int | None
    oom_killed: bool
    last_logs: list[str]
    removed: bool
    killed: bool = False
    """The engine signalled it (docker kill or stop from outside Shoal, or the engine's own
    shutdown): the platform's doing, not the function's."""


class Resync:
    """From `exits()`: the runtime's event stream was re-established after an outage (e.g.
    dockerd restarted); what ran before may be gone, so the agent reconciles."""


class ReplicaRuntime(Protocol):
    @property
    def available(self) -> bool:
        """Whether the container engine answered the last call."""

    async def start(self, command: StartReplica, *, port: int) -> str:
        """Create and start the replica; returns the endpoint the api should call."""

    def endpoint_for(self, port: int) -> str:
        """Where the api reaches a replica of this node listening on `port`."""

    def port_is_free(self, port: int) -> bool:
        """Whether nothing else on the host holds the port (the agent skips taken ones)."""

    async def stop(self, replica_id: str, *, timeout_s: float) -> None:
        """SIGTERM, SIGKILL after the timeout, then remove; harmless if already gone."""

    async def owned(self) -> list[Running]:
        """The replicas of this node that the runtime has (running or not)."""

    def exits(self) -> AsyncIterator[Exit | Resync]:
        """Replicas whose containers died, were OOM-killed or removed behind our back."""

    async def usage(self, replica_id: str, *, cpu_limit: float) -> Usage | None:
        """CPU and memory since the last call for this replica; None on the first."""

    async def settle(self, replica_id: str, *, cpu: float) -> None:
        """The replica's own CPU limit in force, once it is ready (after a startup boost)."""

    async def connections(self, replica_id: str) -> int | None:
        """Connections open to the replica now; None when the runtime cannot tell."""

    async def close(self) -> None: ...
