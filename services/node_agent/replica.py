"""A replica as its node-agent tracks it, and how a container's end is told."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from events.lifecycle import ReplicaState
from events.types import StartReplica
from services.node_agent.runtime import Exit


@dataclass
class Replica:
    command: StartReplica
    port: int
    commanded_at: float
    state: ReplicaState = ReplicaState.STARTING
    leaving: bool = False
    """A drain began."""
    stopping: bool = False
    """A stop began."""
    endpoint: str = ""
    used: tuple[float, float] = (0.0, 0.0)
    """CPUs and memory (MB) it used, as last measured."""
    busy: bool = False
    """In use at the last look (a connection open to it, or CPU used)."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def replica_id(self) -> str:
        return self.command.replica_id


def exit_reason(exit_: Exit) -> str:
    if exit_.removed:
        return "container removed behind the agent's back"
    if exit_.oom_killed:
        return "OOM-killed: the container exceeded its memory limit"
    return f"container exited with code {exit_.exit_code}"
