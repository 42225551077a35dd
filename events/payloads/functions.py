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
    SCHEMA: ClassVar[str] = "1.1"
    from_revision: PosInt
    to_revision: PosInt
    reason: Text
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
    api_instance: Name
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)]
    requests: NonNegInt
    errors: NonNegInt
    mean_concurrency: NonNegFloat
    peak_concurrency: NonNegInt
    queue_depth: NonNegInt
    latency_buckets: Annotated[list[NonNegInt], msgspec.Meta(max_length=32)] = []


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
    SCHEMA: ClassVar[str] = "1.1"
    revision: PosInt
    previous: NonNegInt
    desired: NonNegInt
    panic: bool
    reason: Text
    inputs: Annotated[dict[InputName, Measure], msgspec.Meta(max_length=64)] = {}
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
