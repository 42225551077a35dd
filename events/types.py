"""Typed payloads of every Shoal event, one frozen msgspec Struct per event type.

Each payload names its CloudEvents type (`TYPE`), its schema version (`SCHEMA`,
"major.minor": a reader accepts any minor of its major and ignores fields it does not
know) and its partition key (`key`: the function for function-scoped events, the node
for node-scoped ones).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from events.spec import FunctionSpec, ScalingMetric

__all__ = ["FunctionSpec", "ScalingMetric"]

NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
PosInt = Annotated[int, msgspec.Meta(ge=1, le=2**53)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
"""Every float of an event is bounded: none is infinite or NaN."""
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1e6)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
ReplicaId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
"""Reasons and evidence: bounded, so that no event grows past what Kafka accepts."""
LogLine = Annotated[str, msgspec.Meta(max_length=400)]
Endpoint = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
LAST_LOG_LINES = 20
InputName = Annotated[str, msgspec.Meta(max_length=64)]
Measure = Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]

# Upper bounds (ms) of the latency buckets in RequestStats; the last bucket is +Inf.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
)


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event payload."""

    TYPE: ClassVar[str] = ""
    SCHEMA: ClassVar[str] = "1.0"

    @property
    def key(self) -> str:
        raise NotImplementedError


class FunctionScoped(Payload, frozen=True, kw_only=True):
    function: Name

    @property
    def key(self) -> str:
        return self.function


class NodeScoped(Payload, frozen=True, kw_only=True):
    node: Name

    @property
    def key(self) -> str:
        return self.node


# ---- functions (topic shoal.functions) -------------------------------------------------


class FunctionDeployed(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.deployed"
    revision: PosInt
    spec: FunctionSpec
    requested_by: Text = ""


class FunctionUpdated(FunctionScoped, frozen=True, kw_only=True):
    """A replaced spec (new revision) or patched scaling settings (same revision)."""

    TYPE: ClassVar[str] = "dev.shoal.function.updated"
    revision: PosInt
    spec: FunctionSpec
    requested_by: Text = ""


class FunctionDeleted(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.deleted"
    requested_by: Text = ""


class FunctionRolledBack(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.rolledback"
    from_revision: PosInt
    to_revision: PosInt
    reason: Text


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
    revision: PosInt
    previous: NonNegInt
    desired: NonNegInt
    panic: bool
    reason: Text
    inputs: Annotated[dict[InputName, Measure], msgspec.Meta(max_length=64)] = {}


class PlacementPending(FunctionScoped, frozen=True, kw_only=True):
    """The scheduler found no feasible node for some replicas (they stay pending), or,
    with `pending` 0, that it placed what was pending."""

    TYPE: ClassVar[str] = "dev.shoal.scale.pending"
    SCHEMA: ClassVar[str] = "1.1"
    revision: PosInt
    pending: NonNegInt
    reason: Text


# ---- node commands (topic shoal.node-commands, keyed by node) -----------------------------


class StartReplica(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.command.start"
    SCHEMA: ClassVar[str] = "1.1"
    function: Name
    revision: PosInt
    replica_id: ReplicaId
    spec: FunctionSpec
    ready_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    node_generation: NonNegInt = 0
    """How many times the node had been lost when this was placed: a NodeLost of this
    generation or later ends it, whichever topic is read first."""


class DrainReplica(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.command.drain"
    function: Name
    replica_id: ReplicaId
    drain_s: NonNegFloat = 2.0
    reason: Text = ""


class StopReplica(NodeScoped, frozen=True, kw_only=True):
    """Stop at once, without a drain period (e.g. a replica moved away from a lost node)."""

    TYPE: ClassVar[str] = "dev.shoal.command.stop"
    function: Name
    replica_id: ReplicaId
    reason: Text = ""


# ---- replica lifecycle (topic shoal.replicas, keyed by function) --------------------------


class ReplicaEvent(FunctionScoped, frozen=True, kw_only=True):
    SCHEMA: ClassVar[str] = "1.1"
    revision: PosInt
    replica_id: ReplicaId
    node: Name
    node_generation: NonNegInt = 0
    """The generation of its node it was placed in (from its StartReplica)."""


class ReplicaStarting(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.starting"


class ReplicaReady(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.ready"
    endpoint: Endpoint
    concurrency_limit: NonNegInt = 0


class ReplicaDraining(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.draining"


class ReplicaStopped(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.stopped"
    reason: Text = ""


class ReplicaFailed(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.failed"
    reason: Text
    exit_code: Annotated[int, msgspec.Meta(ge=-(2**31), le=2**32)] | None = None
    oom_killed: bool = False
    last_logs: Annotated[list[LogLine], msgspec.Meta(max_length=LAST_LOG_LINES)] = []
    cause: Literal["function", "platform"] = "function"
    """Whose failure it is: the function's own code (an exit, OOM, a failed probe), which
    counts toward its crash-loop back-off and rollback, or the platform's (its node or
    container engine), which does not."""

    def summary(self) -> str:
        """The reason, with the exit code and an OOM kill when it does not say them."""
        extra = []
        if self.exit_code is not None and str(self.exit_code) not in self.reason:
            extra.append(f"exit {self.exit_code}")
        if self.oom_killed and "OOM" not in self.reason.upper():
            extra.append("OOM killed")
        return self.reason + (f" ({', '.join(extra)})" if extra else "")


# ---- nodes (topic shoal.nodes; heartbeats on shoal.heartbeats) ----------------------------


class NodeCapacity(msgspec.Struct, frozen=True, kw_only=True):
    cpus: Annotated[float, msgspec.Meta(gt=0, le=100_000)]
    memory_mb: PosInt
    max_replicas: PosInt


class NodeJoined(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.joined"
    address: Annotated[str, msgspec.Meta(max_length=253)]
    runtime: Literal["docker", "sim"]
    capacity: NodeCapacity


class NodeHeartbeat(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.heartbeat"
    seq: NonNegInt
    capacity: NodeCapacity
    used_cpus: NonNegFloat
    used_memory_mb: NonNegFloat
    replicas: NonNegInt
    replica_ids: Annotated[list[ReplicaId], msgspec.Meta(max_length=5000)] = []
    """The replicas the agent runs (starting, ready or draining), for drift repair."""


class NodeLost(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.lost"
    SCHEMA: ClassVar[str] = "1.1"
    last_heartbeat_at: Annotated[str, msgspec.Meta(max_length=64)]
    timeout_s: NonNegFloat
    evidence: Text
    generation: NonNegInt = 0
    """The generation of the node that ends: every replica placed on it with this
    generation or an earlier one (`StartReplica.node_generation`) is lost with it."""


class NodeCordoned(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.cordoned"
    requested_by: Text = ""


class NodeUncordoned(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.uncordoned"
    requested_by: Text = ""


class NodeDrainRequested(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.drainrequested"
    requested_by: Text = ""


class NodeDrained(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.drained"


class NodeReturned(NodeScoped, frozen=True, kw_only=True):
    """A lost node heartbeats again; the replicas moved away while it was gone are stopped."""

    TYPE: ClassVar[str] = "dev.shoal.node.returned"
    lost_for_s: NonNegFloat
    moved_replicas: Annotated[list[ReplicaId], msgspec.Meta(max_length=5000)] = []


class DriftRepaired(NodeScoped, frozen=True, kw_only=True):
    """The healer found a node's replicas differing from the log and repaired it.

    `unknown`: the node runs a replica nothing wants (it is stopped). `missing`: a replica
    the log says runs there is no longer reported (it is ended and replaced)."""

    TYPE: ClassVar[str] = "dev.shoal.node.driftrepaired"
    kind: Literal["unknown", "missing"]
    replica_id: ReplicaId
    function: Annotated[str, msgspec.Meta(max_length=253)] = ""
    revision: NonNegInt = 0
    reason: Text


ALL_PAYLOADS: tuple[type[Payload], ...] = (
    FunctionDeployed,
    FunctionUpdated,
    FunctionDeleted,
    FunctionRolledBack,
    ScaleRequested,
    RequestStats,
    ColdStartDemand,
    ContainerStats,
    ScaleDecision,
    PlacementPending,
    StartReplica,
    DrainReplica,
    StopReplica,
    ReplicaStarting,
    ReplicaReady,
    ReplicaDraining,
    ReplicaStopped,
    ReplicaFailed,
    NodeJoined,
    NodeHeartbeat,
    NodeLost,
    NodeReturned,
    DriftRepaired,
    NodeCordoned,
    NodeUncordoned,
    NodeDrainRequested,
    NodeDrained,
)

PAYLOAD_BY_TYPE: dict[str, type[Payload]] = {p.TYPE: p for p in ALL_PAYLOADS}
