"""Functions, their metrics and the scaling decisions about them."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from events.payloads.base import (
    FunctionScoped,
    InputName,
    Measure,
    Name,
    NonNegFloat,
    NonNegInt,
    PosInt,
    ReplicaId,
    Text,
)
from events.payloads.secrets import SealedSecrets
from events.spec import FunctionSpec

# ---- functions (topic shoal.functions) -------------------------------------------------


class FunctionDeployed(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.deployed"
    SCHEMA: ClassVar[str] = "1.1"
    revision: PosInt
    spec: FunctionSpec
    requested_by: Text = ""
    secrets: SealedSecrets = []
    """The secrets its spec names, sealed, at the versions this revision runs with."""


class FunctionUpdated(FunctionScoped, frozen=True, kw_only=True):
    """A replaced spec (new revision) or patched scaling settings (same revision)."""

    TYPE: ClassVar[str] = "dev.shoal.function.updated"
    SCHEMA: ClassVar[str] = "1.1"
    revision: PosInt
    spec: FunctionSpec
    requested_by: Text = ""
    secrets: SealedSecrets = []
    """The secrets its spec names, sealed, at the versions this revision runs with."""


class FunctionDeleted(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.deleted"
    requested_by: Text = ""


class FunctionRolledBack(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.rolledback"
    SCHEMA: ClassVar[str] = "1.2"
    from_revision: PosInt
    to_revision: PosInt
    reason: Text
    inputs: Annotated[dict[InputName, Measure], msgspec.Meta(max_length=64)] = {}
    """The evidence (a canary's analysis), when there are numbers."""
    epoch: NonNegInt = 0
    """Its sender's epoch as its role's leader (`events.fencing`)."""


class ScaleRequested(FunctionScoped, frozen=True, kw_only=True):
    """A user's manual scale: replicas pinned until the next automatic decision window."""

    TYPE: ClassVar[str] = "dev.shoal.function.scalerequested"
    replicas: NonNegInt
    requested_by: Text = ""


# ---- metrics and demand (hours of retention) ---------------------------------------------


class RequestStats(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.metrics.requests"
    SCHEMA: ClassVar[str] = "1.1"
    api_instance: Name
    revision: NonNegInt = 0
    """The revision the calls were sent to (0: the function's, as it was then)."""
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)]
    requests: NonNegInt
    errors: NonNegInt
    mean_concurrency: NonNegFloat
    peak_concurrency: NonNegInt
    queue_depth: NonNegInt
    latency_buckets: Annotated[list[NonNegInt], msgspec.Meta(max_length=32)] = []
    latency_fine: Annotated[list[NonNegInt], msgspec.Meta(max_length=64)] = []
    """Counts in `FINE_LATENCY_BOUNDS_MS`' buckets (empty from an older api)."""


class ColdStartDemand(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.demand.coldstart"
    api_instance: Name
    queued: NonNegInt


class ContainerStats(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.metrics.container"
    revision: PosInt
    replica_id: ReplicaId
    node: Name
    cpu_fraction: NonNegFloat
    cpu_cores_used: NonNegFloat
    memory_bytes: NonNegInt
    memory_limit_bytes: NonNegInt


# ---- decisions ---------------------------------------------------------------------------


class ScaleDecision(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.scale.decision"
    SCHEMA: ClassVar[str] = "1.2"
    revision: PosInt
    previous: NonNegInt
    desired: NonNegInt
    panic: bool
    reason: Text
    inputs: Annotated[dict[InputName, Measure], msgspec.Meta(max_length=64)] = {}
    per_revision: Annotated[dict[PosInt, NonNegInt], msgspec.Meta(max_length=32)] = {}
    """How the desired replicas are shared between the revisions that take traffic
    (empty: all of `revision`)."""
    epoch: NonNegInt = 0
    """Its sender's epoch as its role's leader (`events.fencing`)."""


class PlacementPending(FunctionScoped, frozen=True, kw_only=True):
    """The scheduler found no feasible node for some replicas (they stay pending), or,
    with `pending` 0, that it placed what was pending."""

    TYPE: ClassVar[str] = "dev.shoal.scale.pending"
    SCHEMA: ClassVar[str] = "1.1"
    revision: PosInt
    pending: NonNegInt
    reason: Text
