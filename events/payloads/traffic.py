"""Traffic between a function's revisions: the split a user sets, the tags that name a
revision, and the canary analysis that moves a new revision's share step by step."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from events.payloads.base import FunctionScoped, InputName, Measure, NonNegInt, PosInt, Text
from events.spec import DNS_LABEL

Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=DNS_LABEL)]
MAX_TARGETS = 8
CanaryDecision = Literal["promote", "wait", "abort"]


class TrafficTarget(msgspec.Struct, frozen=True, kw_only=True):
    revision: PosInt
    percent: Percent


class TrafficSplit(FunctionScoped, frozen=True, kw_only=True):
    """A user's split of the function's calls between revisions (percents summing to
    100); it ends a canary rollout in progress."""

    TYPE: ClassVar[str] = "dev.shoal.function.traffic"
    targets: Annotated[list[TrafficTarget], msgspec.Meta(min_length=1, max_length=MAX_TARGETS)]
    requested_by: Text = ""

    def __post_init__(self) -> None:
        revisions = [t.revision for t in self.targets]
        if len(set(revisions)) != len(revisions):
            raise ValueError("a revision is named twice")
        total = sum(t.percent for t in self.targets)
        if total != 100:
            raise ValueError(f"the percents sum to {total}, not 100")


class RevisionTagged(FunctionScoped, frozen=True, kw_only=True):
    """A tag that names a revision, reachable at /fn/NAME@TAG/ (revision 0: untagged)."""

    TYPE: ClassVar[str] = "dev.shoal.function.tagged"
    tag: Tag
    revision: NonNegInt
    requested_by: Text = ""


class CanaryAnalysed(FunctionScoped, frozen=True, kw_only=True):
    """One judgement of a canary step: promote (the canary's share rises to `percent`),
    wait, or abort (a `FunctionRolledBack` follows), with the numbers it was made from."""

    TYPE: ClassVar[str] = "dev.shoal.rollout.analysed"
    revision: PosInt
    """The canary."""
    stable: PosInt
    """The revision it is compared with, which keeps the rest of the traffic."""
    step: NonNegInt
    """The canary's step after this decision, from 1 (0: not started, the canary not yet
    ready); a promotion past the last step is the step to 100%."""
    percent: Percent
    """The canary's share of traffic after this decision."""
    decision: CanaryDecision
    reason: Text
    inputs: Annotated[dict[InputName, Measure], msgspec.Meta(max_length=64)] = {}
    epoch: NonNegInt = 0
    """Its sender's epoch as its role's leader (`events.fencing`)."""
