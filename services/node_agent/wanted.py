"""Which replicas a node should run: the fold of its command history."""

from __future__ import annotations

from events.types import DrainReplica, Payload, StartReplica, StopReplica


def fold_commands(wanted: dict[str, StartReplica], command: Payload) -> dict[str, StartReplica]:
    """Apply one command to the wanted set (replica id -> its start command), in place."""
    if isinstance(command, StartReplica):
        wanted.setdefault(command.replica_id, command)
    elif isinstance(command, DrainReplica | StopReplica):
        wanted.pop(command.replica_id, None)
    return wanted
