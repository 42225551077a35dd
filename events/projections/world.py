"""The one model of the world: the projections composed, applied once per event id.

Every service, the dashboard and `shoal replay` fold the history with `World.apply`; a
service adds on top only what is its own (room accounting, metric windows), driven by
the `Changes` each event makes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from events.envelope import Envelope
from events.fencing import Fence
from events.idempotency import SeenIds
from events.lifecycle import ReplicaState
from events.projections.failures import FailuresProjection
from events.projections.functions import FunctionsProjection, FunctionView
from events.projections.nodes import NodesProjection
from events.projections.replicas import ReplicasProjection, ReplicaView
from events.projections.secrets import SecretsProjection
from events.projections.tokens import TokensProjection
from events.types import (
    CanaryAnalysed,
    CommandsClaimed,
    DrainReplica,
    DriftRepaired,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionUpdated,
    NodeClaimed,
    NodeCordoned,
    NodeDrained,
    NodeDrainRequested,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeReturned,
    NodeRuntimeChanged,
    NodeUncordoned,
    Payload,
    PlacementPending,
    ReplicaDraining,
    ReplicaEvent,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    RevisionTagged,
    ScaleClaimed,
    ScaleDecision,
    ScaleRequested,
    SecretRemoved,
    SecretSet,
    StartReplica,
    StopReplica,
    TokenCreated,
    TokenRevoked,
    TrafficSplit,
)

SEEN_IDS = 200_000
UNREMEMBERED = frozenset({NodeHeartbeat})
"""Events whose ids are not remembered: applying one twice is harmless, and there are so
many of them that they would push every other id out of the window."""


def settle() -> None:
    """Call between batches of a long fold: what the fold built so far leaves the cyclic
    collector's view (`gc.freeze`), which would otherwise scan every kept object again at
    each collection (that made a rebuild 1.7 times slower)."""
    gc.freeze()


@dataclass
class Changes:
    """What one event changed: the functions, replicas and nodes to look at again."""

    functions: set[str] = field(default_factory=set)
    replicas: set[str] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)


@dataclass
class World:
    nodes: NodesProjection = field(default_factory=NodesProjection)
    functions: FunctionsProjection = field(default_factory=FunctionsProjection)
    failures: FailuresProjection = field(default_factory=FailuresProjection)
    tokens: TokensProjection = field(default_factory=TokensProjection)
    secrets: SecretsProjection = field(default_factory=SecretsProjection)
    fence: Fence = field(default_factory=Fence)
    """Commands of a deposed leader are not folded (nor obeyed)."""
    seen: SeenIds = field(default_factory=lambda: SeenIds(SEEN_IDS))
    as_of: datetime | None = None
    replicas: ReplicasProjection = field(init=False)

    def __post_init__(self) -> None:
        self.replicas = ReplicasProjection(self.nodes)

    def function(self, name: str) -> FunctionView | None:
        """The function, unless it was never deployed or was deleted."""
        return self.functions.live(name)

    def ready_replicas(self, function: str) -> list[ReplicaView]:
        return [r for r in self.replicas.live_of(function) if r.state is ReplicaState.READY]

    def apply(self, envelope: Envelope, now: float) -> Changes | None:
        """Fold one event; None when it was applied before (same id), or when it is a
        deposed leader's (`events.fencing`). `now` is when this process heard it, on its own
        clock. Metrics events change nothing here."""
        fold = _FOLDS.get(type(envelope.data))
        if fold is None:
            return Changes()
        remembered = type(envelope.data) not in UNREMEMBERED
        if remembered and envelope.id in self.seen:
            return None
        family = FENCED.get(type(envelope.data))
        if family is not None and not self.fence.admits(
            family,
            envelope.subject,
            envelope.source,
            envelope.data.epoch,  # type: ignore[attr-defined]
        ):
            self.seen.add(envelope.id)
            return None
        changes = Changes()
        fold(self, envelope, now, changes)
        if remembered:
            self.seen.add(envelope.id)
        if self.as_of is None or envelope.time > self.as_of:
            self.as_of = envelope.time
        return changes

    def prune(self, before: float) -> list[str]:
        """Forget what ended before `before` (this process's clock): ended replicas, deleted
        functions and their failure records. Returns the functions forgotten, so that a
        service can forget what it keeps about them too."""
        self.replicas.prune(before)
        gone = self.functions.prune(before)
        for key in [k for k in self.failures.revisions if k[0] in gone]:
            del self.failures.revisions[key]
        for name in gone:
            self.failures.functions.pop(name, None)
            self.fence.forget(name)
        return gone

    def shift(self, offset: float) -> None:
        """Move every time the projections heard something by `offset` seconds (history
        read back is placed on this process's clock once it is all read)."""
        for projection in (self.nodes, self.replicas, self.functions, self.failures):
            projection.shift(offset)

    def _function_event(self, envelope: Envelope, now: float, changes: Changes) -> None:
        event = envelope.data
        self.functions.apply(event, event_id=envelope.id, at=envelope.time, now=now)
        changes.functions.add(event.key)

    def _command(self, envelope: Envelope, now: float, changes: Changes) -> None:
        event: StartReplica | DrainReplica | StopReplica = envelope.data  # type: ignore[assignment]
        changes.functions.add(self.replicas.command(event, now))
        changes.replicas.add(event.replica_id)

    def _report(self, envelope: Envelope, now: float, changes: Changes) -> None:
        event: ReplicaEvent = envelope.data  # type: ignore[assignment]
        before = self.replicas.get(event.replica_id)
        was_failed = before is not None and before.state is ReplicaState.FAILED
        view = self.replicas.report(event, now)
        if view is None:
            return
        if isinstance(event, ReplicaReady):
            self.failures.ready(event.function, event.revision)
        elif isinstance(event, ReplicaFailed) and not was_failed:
            self.failures.failed(
                event.function, event.revision, view.reason, now, counts=event.cause == "function"
            )
        changes.functions.add(event.function)
        changes.replicas.add(event.replica_id)

    def _drift(self, envelope: Envelope, now: float, changes: Changes) -> None:
        event: DriftRepaired = envelope.data  # type: ignore[assignment]
        changes.functions.add(self.replicas.drift(event, now))
        changes.replicas.add(event.replica_id)
        changes.nodes.add(event.node)

    def _token(self, envelope: Envelope, now: float, changes: Changes) -> None:
        event: TokenCreated | TokenRevoked = envelope.data  # type: ignore[assignment]
        self.tokens.apply(event, envelope.time)

    def _secret(self, envelope: Envelope, now: float, changes: Changes) -> None:
        event: SecretSet | SecretRemoved = envelope.data  # type: ignore[assignment]
        self.secrets.apply(event, envelope.time)

    def _node(self, envelope: Envelope, now: float, changes: Changes) -> None:
        event = envelope.data
        self.nodes.apply(event, at=envelope.time, now=now)
        changes.nodes.add(event.key)
        if isinstance(event, NodeLost):
            for ended in self.replicas.node_lost(event.node, event.generation, now):
                changes.replicas.add(ended.replica_id)
                changes.functions.add(ended.function)

    def _claim(self, envelope: Envelope, now: float, changes: Changes) -> None:
        """A claim changes nothing but the fence, which `apply` has raised."""


FENCED: dict[type[Payload], str] = {
    **dict.fromkeys((StartReplica, DrainReplica, StopReplica, CommandsClaimed), "command"),
    **dict.fromkeys((ScaleDecision, FunctionRolledBack, CanaryAnalysed, ScaleClaimed), "scale"),
    **dict.fromkeys((NodeLost, NodeReturned, DriftRepaired, NodeClaimed), "node"),
}
"""The deciders' events a deposed leader could still send, by family (one topic each), and
the claims (`events.payloads.claims`) by which a new leader fences them."""
_Fold = Callable[[World, Envelope, float, Changes], None]
_FOLDS: dict[type[Payload], _Fold] = {
    **dict.fromkeys(
        (
            FunctionDeployed,
            FunctionUpdated,
            FunctionDeleted,
            FunctionRolledBack,
            ScaleRequested,
            ScaleDecision,
            PlacementPending,
            TrafficSplit,
            RevisionTagged,
            CanaryAnalysed,
        ),
        World._function_event,
    ),
    **dict.fromkeys((StartReplica, DrainReplica, StopReplica), World._command),
    **dict.fromkeys(
        (ReplicaStarting, ReplicaReady, ReplicaDraining, ReplicaStopped, ReplicaFailed),
        World._report,
    ),
    DriftRepaired: World._drift,
    **dict.fromkeys(
        (
            NodeJoined,
            NodeHeartbeat,
            NodeLost,
            NodeReturned,
            NodeRuntimeChanged,
            NodeCordoned,
            NodeUncordoned,
            NodeDrainRequested,
            NodeDrained,
        ),
        World._node,
    ),
    **dict.fromkeys((TokenCreated, TokenRevoked), World._token),
    **dict.fromkeys((SecretSet, SecretRemoved), World._secret),
    **dict.fromkeys((CommandsClaimed, NodeClaimed, ScaleClaimed), World._claim),
}
