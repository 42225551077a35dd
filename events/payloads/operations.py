"""How the platform itself fares: a decider that failed on one thing, the healer holding
back in a disruption."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from events.payloads.base import Name, NonNegFloat, NonNegInt, Payload, Text

CLUSTER_KEY = "cluster"


class DecisionFailed(Payload, frozen=True, kw_only=True):
    """A decider raised while deciding about one function or node; that one backs off and
    the others go on. Said once per run of failures."""

    TYPE: ClassVar[str] = "dev.shoal.decision.failed"
    subject: Name
    """The function or node the decision was about."""
    decider: Literal["autoscaler", "scheduler", "healer"]
    error: Text
    retry_in_s: NonNegFloat

    @property
    def key(self) -> str:
        return self.subject


class NodeLossSuspended(Payload, frozen=True, kw_only=True):
    """The healer declares no node lost while it may be the one that is deaf: every node,
    or most of them, went silent at once (Kubernetes' node controller stops evicting in a
    full disruption). `suspended` False: the disruption ended."""

    TYPE: ClassVar[str] = "dev.shoal.node.losssuspended"
    suspended: bool
    reason: Text
    silent_nodes: Annotated[list[Name], msgspec.Meta(max_length=5000)] = []
    total_nodes: NonNegInt = 0

    @property
    def key(self) -> str:
        return CLUSTER_KEY
