"""What the api knows of the world: the shared projections, the routes derived from them,
and a per-function signal that wakes requests waiting for a replica."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from events.envelope import Envelope
from events.lifecycle import ReplicaState
from events.projections.functions import FunctionView
from events.projections.world import World
from services.api.routing import Route, RouteTable
from services.common.clock import SYSTEM_CLOCK, Clock, Hearing


@dataclass
class ApiView:
    world: World = field(default_factory=World)
    routes: RouteTable = field(default_factory=RouteTable)
    clock: Clock = SYSTEM_CLOCK
    left: Callable[[str], None] | None = None
    """Told the endpoint of each replica that leaves routing."""
    hearing: Hearing = field(init=False)
    _signals: dict[str, asyncio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hearing = Hearing(self.clock)

    def function(self, name: str) -> FunctionView | None:
        return self.world.function(name)

    def signal(self, function: str) -> asyncio.Event:
        """An event set at the next change of the function's routes or existence."""
        event = self._signals.get(function)
        if event is None:
            event = self._signals[function] = asyncio.Event()
        return event

    def notify(self, function: str) -> None:
        event = self._signals.pop(function, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        """Wake every waiting request (the replicas' shares changed)."""
        for function in list(self._signals):
            self.notify(function)

    def apply(self, envelope: Envelope) -> bool:
        """Fold one event (False: it was applied before); a replica is routed while it is
        ready, and not after."""
        changes = self.world.apply(envelope, self.hearing.heard(envelope))
        if changes is None:
            return False
        for replica_id in changes.replicas:
            replica = self.world.replicas.get(replica_id)
            if replica is None:
                continue
            if replica.state is ReplicaState.READY and replica.endpoint:
                route = Route(
                    replica_id=replica_id,
                    revision=replica.revision,
                    node=replica.node,
                    endpoint=replica.endpoint,
                    limit=replica.concurrency_limit,
                )
                self.routes.add(replica.function, route)
            else:
                gone = self.routes.remove(replica.function, replica_id)
                if gone is not None and self.left is not None:
                    self.left(gone.endpoint)
        for function in changes.functions:
            self.notify(function)
        return True
