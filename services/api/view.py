"""What the api knows of the world: the cluster state folded from Kafka, the routes, and a
per-function signal that wakes requests waiting for a replica."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from events.envelope import Envelope
from events.state import ClusterState, FunctionView, apply
from events.types import (
    DriftRepaired,
    FunctionDeleted,
    FunctionRolledBack,
    FunctionUpdated,
    NodeLost,
    ReplicaDraining,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStopped,
)
from services.api.routing import Route, RouteTable


@dataclass
class ApiView:
    cluster: ClusterState = field(default_factory=ClusterState)
    routes: RouteTable = field(default_factory=RouteTable)
    _signals: dict[str, asyncio.Event] = field(default_factory=dict)

    def function(self, name: str) -> FunctionView | None:
        view = self.cluster.functions.get(name)
        return None if view is None or view.deleted else view

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

    async def on_event(self, envelope: Envelope) -> None:
        apply(self.cluster, envelope)
        event = envelope.data
        if isinstance(event, ReplicaReady):
            if event.replica_id in self.cluster.replicas:
                self.routes.add(
                    event.function,
                    Route(
                        replica_id=event.replica_id,
                        revision=event.revision,
                        node=event.node,
                        endpoint=event.endpoint,
                        limit=event.concurrency_limit,
                    ),
                )
                self.notify(event.function)
        elif isinstance(event, ReplicaDraining | ReplicaStopped | ReplicaFailed):
            self.routes.remove(event.function, event.replica_id)
        elif isinstance(event, DriftRepaired):
            if event.kind == "missing":
                self.routes.remove(event.function, event.replica_id)
        elif isinstance(event, NodeLost):
            self.routes.remove_node(event.node)
        elif isinstance(event, FunctionDeleted | FunctionUpdated | FunctionRolledBack):
            self.notify(event.function)
