"""Functions and their revisions, the scale decisions and what the scheduler could not place.

Function events are on one topic, kept in order per function. Decisions and pending
placements are on another; each names the revision it was made for, and revisions are
numbered on across a function's deletion and re-creation, so a decision read before or
after its deployment lands on the incarnation it was made for, whatever the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events.projections.traffic import Rollout, Traffic
from events.types import (
    CanaryAnalysed,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionSpec,
    FunctionUpdated,
    Payload,
    PlacementPending,
    RevisionTagged,
    ScaleDecision,
    ScaleRequested,
    SealedSecret,
    TrafficSplit,
)

MAX_TAGS = 8
"""With MAX_TARGETS revisions in a split and a canary, at most 17 revisions run: within
what a scale decision can share its count between (`ScaleDecision.per_revision`)."""


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
    desired_split: dict[int, int] = field(default_factory=dict)
    """The last decision's replicas per revision (empty: all of the latest)."""
    split: dict[int, int] = field(default_factory=dict)
    """A user's split of the calls (revision -> percent); empty: all to `revision`."""
    tags: dict[str, int] = field(default_factory=dict)
    rollout: Rollout | None = None

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.revision, self.split, self.tags, self.rollout)

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
    promotions: dict[str, CanaryAnalysed] = field(default_factory=dict)
    """The furthest canary promotion of each function (it may be read before its revision)."""

    def shift(self, offset: float) -> None:
        """Move every time this projection heard something by `offset` seconds."""
        for view in self.functions.values():
            view.revision_heard_at = {r: at + offset for r, at in view.revision_heard_at.items()}
            if view.deleted_heard_at is not None:
                view.deleted_heard_at += offset
            if view.rollout is not None:
                view.rollout.step_heard_at += offset

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
            self.promotions.pop(name, None)
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
            if isinstance(event, CanaryAnalysed) and event.decision == "promote":
                self._keep_promotion(event)
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
            if event.revision > view.revision:
                _new_revision(view, event, now)
                early = self.promotions.get(view.name)
                if early is not None and early.revision == event.revision:
                    _analysed(view, early, now)
            view.revision, view.spec = event.revision, event.spec
        # A new spec or new scaling settings hand the count back to the autoscaler.
        view.pinned_replicas = None

    def _keep_promotion(self, event: CanaryAnalysed) -> None:
        kept = self.promotions.get(event.function)
        if kept is None or (event.revision, event.step) > (kept.revision, kept.step):
            self.promotions[event.function] = event

    def _take_decision(self, name: str) -> None:
        view, found = self.functions.get(name), self.decisions.get(name)
        if view is not None and found is not None and view.owns(found[0].revision):
            decision, at = found
            view.desired, view.last_decision, view.last_decision_at = decision.desired, decision, at
            view.desired_split = dict(decision.per_revision)

    def _take_pending(self, name: str) -> None:
        view, found = self.functions.get(name), self.pendings.get(name)
        if view is not None and found is not None and view.owns(found.revision):
            view.pending, view.pending_reason = found.pending, found.reason


def _seal(view: FunctionView, event: FunctionDeployed | FunctionUpdated) -> None:
    if event.secrets:
        view.sealed[event.revision] = tuple(event.secrets)
    else:
        view.sealed.pop(event.revision, None)


def _new_revision(
    view: FunctionView, event: FunctionDeployed | FunctionUpdated, now: float
) -> None:
    """A new latest revision takes all calls at once, or starts a canary against the
    revision that has the most of them now."""
    if event.spec.rollout == "canary":
        stable = view.rollout.stable if view.rollout is not None else view.traffic.primary()
        view.rollout = Rollout(canary=event.revision, stable=stable, step_heard_at=now)
    else:
        view.rollout = None
    view.split = {}


def _change(view: FunctionView, event: Payload, now: float) -> None:
    if isinstance(event, FunctionDeleted):
        view.deleted, view.deleted_heard_at = True, now
        view.rollout = None
    elif isinstance(event, FunctionRolledBack):
        view.rolled_back.add(event.from_revision)
        if view.revision == event.from_revision and event.to_revision in view.revisions:
            view.revision = event.to_revision
            view.spec = view.revisions[event.to_revision]
            view.rollback_reason = event.reason
            view.rollout, view.split = None, {}
        view.tags = {t: r for t, r in view.tags.items() if r != event.from_revision}
    elif isinstance(event, ScaleRequested):
        view.pinned_replicas = event.replicas
    elif isinstance(event, TrafficSplit):
        if all(_routable(view, t.revision) for t in event.targets):
            view.rollout = None
            split = {t.revision: t.percent for t in event.targets if t.percent}
            view.split = {} if split == {view.revision: 100} else split
    elif isinstance(event, RevisionTagged):
        _tag(view, event)
    elif isinstance(event, CanaryAnalysed):
        _analysed(view, event, now)


def _tag(view: FunctionView, event: RevisionTagged) -> None:
    if not event.revision:
        view.tags.pop(event.tag, None)
    elif _routable(view, event.revision) and (event.tag in view.tags or len(view.tags) < MAX_TAGS):
        view.tags[event.tag] = event.revision


def _routable(view: FunctionView, revision: int) -> bool:
    """Whether calls may be sent to the revision: one of this incarnation, not rolled back."""
    return revision in view.revisions and revision not in view.rolled_back


def _analysed(view: FunctionView, event: CanaryAnalysed, now: float) -> None:
    """A judgement of the canary in progress; a promotion moves it on a step (the last,
    to 100%, ends the rollout: the canary is the latest revision, which takes all)."""
    rollout = view.rollout
    if rollout is None or rollout.canary != event.revision:
        return
    rollout.analysis = event
    if event.decision != "promote" or event.step <= rollout.step:
        return
    if event.percent >= 100:
        view.rollout = None
        return
    rollout.step, rollout.percent, rollout.step_heard_at = event.step, event.percent, now
