"""Functions and their revisions, the scale decisions and what the scheduler could not place.

Function events are on one topic, kept in order per function. Decisions and pending
placements are on another; each names the revision it was made for, and revisions are
numbered on across a function's deletion and re-creation, so a decision read before or
after its deployment lands on the incarnation it was made for, whatever the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events.types import (
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    Payload,
    PlacementPending,
    ScaleDecision,
    ScaleRequested,
    SealedSecret,
)


@dataclass(slots=True)
class FunctionView:
    name: str
    spec: FunctionSpec
    revision: int
    revisions: dict[int, FunctionSpec]
    first_revision: int
    """The revision it was deployed with: older revisions belong to an earlier incarnation."""
    deployed_id: str = ""
    deleted: bool = False
    desired: int | None = None
    last_decision: ScaleDecision | None = None
    last_decision_at: datetime | None = None
    pinned_replicas: int | None = None
    rollback_reason: str = ""
    rolled_back: set[int] = field(default_factory=set)
    """Revisions rolled back from: never a rollback target, never judged again."""
    pending: int = 0
    pending_reason: str = ""
    """Why the scheduler could not start `pending` replicas (capacity, crash-loop back-off)."""
    revision_heard_at: dict[int, float] = field(default_factory=dict)
    """When this process first heard of each revision (its rollout's start, as seen here)."""
    deleted_heard_at: float | None = None
    sealed: dict[int, tuple[SealedSecret, ...]] = field(default_factory=dict)
    """The secrets each revision runs with, sealed (none for most)."""

    def owns(self, revision: int) -> bool:
        """Whether a decision about `revision` is about this incarnation."""
        return not self.deleted and revision >= self.first_revision


@dataclass
class FunctionsProjection:
    functions: dict[str, FunctionView] = field(default_factory=dict)
    decisions: dict[str, tuple[ScaleDecision, datetime]] = field(default_factory=dict)
    """The newest decision about each function (it may be read before the function)."""
    pendings: dict[str, PlacementPending] = field(default_factory=dict)
    retired: dict[str, int] = field(default_factory=dict)
    """Functions deleted and forgotten -> their newest revision."""

    def shift(self, offset: float) -> None:
        """Move every time this projection heard something by `offset` seconds."""
        for view in self.functions.values():
            view.revision_heard_at = {r: at + offset for r, at in view.revision_heard_at.items()}
            if view.deleted_heard_at is not None:
                view.deleted_heard_at += offset

    def prune(self, before: float) -> list[str]:
        """Forget functions deleted before `before`, keeping only their newest revision so
        that a re-creation numbers on. Returns the names forgotten."""
        gone = [
            view.name
            for view in self.functions.values()
            if view.deleted and view.deleted_heard_at is not None and view.deleted_heard_at < before
        ]
        for name in gone:
            self.retired[name] = max(self.functions.pop(name).revisions)
            self.decisions.pop(name, None)
            self.pendings.pop(name, None)
        return gone

    def live(self, name: str) -> FunctionView | None:
        view = self.functions.get(name)
        return None if view is None or view.deleted else view

    def next_revision(self, name: str) -> int:
        """The revision a deployment of `name` gets: numbering goes on after a deletion."""
        view = self.functions.get(name)
        newest = max(view.revisions) if view is not None else self.retired.get(name, 0)
        return newest + 1

    def apply(self, event: Payload, *, event_id: str, at: datetime, now: float) -> None:
        if isinstance(event, FunctionDeployed | FunctionUpdated):
            self._spec(event, event_id, now)
        elif isinstance(event, ScaleDecision):
            self.decisions[event.function] = (event, at)
            self._take_decision(event.function)
        elif isinstance(event, PlacementPending):
            self.pendings[event.function] = event
            self._take_pending(event.function)
        else:
            view = self.functions.get(event.function)  # type: ignore[attr-defined]
            if view is not None and not view.deleted:
                _change(view, event, now)

    def _spec(self, event: FunctionDeployed | FunctionUpdated, event_id: str, now: float) -> None:
        view = self.functions.get(event.function)
        fresh = isinstance(event, FunctionDeployed) and (view is None or view.deleted)
        if view is None or fresh:
            view = self.functions[event.function] = FunctionView(
                name=event.function,
                spec=event.spec,
                revision=event.revision,
                revisions={event.revision: event.spec},
                first_revision=event.revision,
                deployed_id=event_id,
            )
            view.revision_heard_at[event.revision] = now
            _seal(view, event)
            self._take_decision(event.function)
            self._take_pending(event.function)
            return
        if view.deleted or event_id == view.deployed_id:
            return
        view.revisions[event.revision] = event.spec
        _seal(view, event)
        view.revision_heard_at.setdefault(event.revision, now)
        if event.revision >= view.revision and event.revision not in view.rolled_back:
            view.revision, view.spec = event.revision, event.spec
        # A new spec or new scaling settings hand the count back to the autoscaler.
        view.pinned_replicas = None

    def _take_decision(self, name: str) -> None:
        view, found = self.functions.get(name), self.decisions.get(name)
        if view is not None and found is not None and view.owns(found[0].revision):
            decision, at = found
            view.desired, view.last_decision, view.last_decision_at = decision.desired, decision, at

    def _take_pending(self, name: str) -> None:
        view, found = self.functions.get(name), self.pendings.get(name)
        if view is not None and found is not None and view.owns(found.revision):
            view.pending, view.pending_reason = found.pending, found.reason


def _seal(view: FunctionView, event: FunctionDeployed | FunctionUpdated) -> None:
    if event.secrets:
        view.sealed[event.revision] = tuple(event.secrets)
    else:
        view.sealed.pop(event.revision, None)


def _change(view: FunctionView, event: Payload, now: float) -> None:
    if isinstance(event, FunctionDeleted):
        view.deleted, view.deleted_heard_at = True, now
    elif isinstance(event, FunctionRolledBack):
        view.rolled_back.add(event.from_revision)
        if view.revision == event.from_revision and event.to_revision in view.revisions:
            view.revision = event.to_revision
            view.spec = view.revisions[event.to_revision]
            view.rollback_reason = event.reason
    elif isinstance(event, ScaleRequested):
        view.pinned_replicas = event.replicas
