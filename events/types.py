"""Typed payloads of every Shoal event, one frozen msgspec Struct per event type.

Each payload names its CloudEvents type (`TYPE`), its schema version (`SCHEMA`,
"major.minor": a reader accepts any minor of its major and ignores fields it does not
know) and its partition key (`key`: the function for function-scoped events, the node
for node-scoped ones).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PosInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
ScalingMetric = Literal["concurrency", "rps", "cpu"]

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


class FunctionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a user asked to run; defaults follow Knative Serving where it has one."""

    name: Name
    image: Annotated[str, msgspec.Meta(min_length=1)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8080
    env: dict[str, str] = {}
    command: list[str] = []
    args: list[str] = []
    cpu: Annotated[float, msgspec.Meta(gt=0, le=64)] = 0.5
    memory_mb: Annotated[int, msgspec.Meta(ge=8)] = 128
    readiness_path: str = "/"
    request_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 300.0
    concurrency_limit: NonNegInt = 0
    min_replicas: NonNegInt = 0
    max_replicas: NonNegInt = 0
    initial_scale: NonNegInt = 1
    scaling_metric: ScalingMetric = "concurrency"
    target: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    target_utilization: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.7
    cpu_target_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] | None = None
    scale_to_zero_grace_s: NonNegFloat = 30.0
    stable_window_s: Annotated[float, msgspec.Meta(ge=6, le=3600)] = 60.0
    panic_window_pct: Annotated[float, msgspec.Meta(ge=1, le=100)] = 10.0
    panic_threshold_pct: Annotated[float, msgspec.Meta(ge=110, le=1000)] = 200.0
    scale_down_delay_s: NonNegFloat = 0.0
    max_scale_up_rate: Annotated[float, msgspec.Meta(gt=1)] = 1000.0
    max_scale_down_rate: Annotated[float, msgspec.Meta(gt=1)] = 2.0
    private: bool = False
    """Calls need the api's bearer token too (function calls are open by default)."""


# ---- functions (topic shoal.functions) -------------------------------------------------


class FunctionDeployed(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.deployed"
    revision: PosInt
    spec: FunctionSpec
    requested_by: str = ""


class FunctionUpdated(FunctionScoped, frozen=True, kw_only=True):
    """A replaced spec (new revision) or patched scaling settings (same revision)."""

    TYPE: ClassVar[str] = "dev.shoal.function.updated"
    revision: PosInt
    spec: FunctionSpec
    requested_by: str = ""


class FunctionDeleted(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.deleted"
    requested_by: str = ""


class FunctionRolledBack(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.function.rolledback"
    from_revision: PosInt
    to_revision: PosInt
    reason: str


class ScaleRequested(FunctionScoped, frozen=True, kw_only=True):
    """A user's manual scale: replicas pinned until the next automatic decision window."""

    TYPE: ClassVar[str] = "dev.shoal.function.scalerequested"
    replicas: NonNegInt
    requested_by: str = ""


# ---- metrics and demand (hours of retention) ---------------------------------------------


class RequestStats(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.metrics.requests"
    api_instance: str
    interval_s: Annotated[float, msgspec.Meta(gt=0)]
    requests: NonNegInt
    errors: NonNegInt
    mean_concurrency: NonNegFloat
    peak_concurrency: NonNegInt
    queue_depth: NonNegInt
    latency_buckets: list[NonNegInt] = []


class ColdStartDemand(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.demand.coldstart"
    api_instance: str
    queued: NonNegInt


class ContainerStats(FunctionScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.metrics.container"
    revision: PosInt
    replica_id: Name
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
    reason: str
    inputs: dict[str, float] = {}


class PlacementPending(FunctionScoped, frozen=True, kw_only=True):
    """The scheduler found no feasible node for a replica; it stays pending."""

    TYPE: ClassVar[str] = "dev.shoal.scale.pending"
    revision: PosInt
    pending: PosInt
    reason: str


# ---- node commands (topic shoal.node-commands, keyed by node) -----------------------------


class StartReplica(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.command.start"
    function: Name
    revision: PosInt
    replica_id: Name
    spec: FunctionSpec
    ready_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0


class DrainReplica(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.command.drain"
    function: Name
    replica_id: Name
    drain_s: NonNegFloat = 2.0
    reason: str = ""


class StopReplica(NodeScoped, frozen=True, kw_only=True):
    """Stop at once, without a drain period (e.g. a replica moved away from a lost node)."""

    TYPE: ClassVar[str] = "dev.shoal.command.stop"
    function: Name
    replica_id: Name
    reason: str = ""


# ---- replica lifecycle (topic shoal.replicas, keyed by function) --------------------------


class ReplicaEvent(FunctionScoped, frozen=True, kw_only=True):
    revision: PosInt
    replica_id: Name
    node: Name


class ReplicaStarting(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.starting"


class ReplicaReady(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.ready"
    endpoint: Annotated[str, msgspec.Meta(min_length=1)]
    concurrency_limit: NonNegInt = 0


class ReplicaDraining(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.draining"


class ReplicaStopped(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.stopped"
    reason: str = ""


class ReplicaFailed(ReplicaEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.replica.failed"
    reason: str
    exit_code: int | None = None
    oom_killed: bool = False
    last_logs: list[str] = []

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
    cpus: Annotated[float, msgspec.Meta(gt=0)]
    memory_mb: PosInt
    max_replicas: PosInt


class NodeJoined(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.joined"
    address: str
    runtime: Literal["docker", "sim"]
    capacity: NodeCapacity


class NodeHeartbeat(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.heartbeat"
    seq: NonNegInt
    capacity: NodeCapacity
    used_cpus: NonNegFloat
    used_memory_mb: NonNegFloat
    replicas: NonNegInt
    replica_ids: list[str] = []
    """The replicas the agent runs (starting, ready or draining), for drift repair."""


class NodeLost(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.lost"
    last_heartbeat_at: str
    timeout_s: NonNegFloat
    evidence: str


class NodeCordoned(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.cordoned"
    requested_by: str = ""


class NodeUncordoned(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.uncordoned"
    requested_by: str = ""


class NodeDrainRequested(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.drainrequested"
    requested_by: str = ""


class NodeDrained(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.drained"


class NodeReturned(NodeScoped, frozen=True, kw_only=True):
    """A lost node heartbeats again; the replicas moved away while it was gone are stopped."""

    TYPE: ClassVar[str] = "dev.shoal.node.returned"
    lost_for_s: NonNegFloat
    moved_replicas: list[str] = []


class DriftRepaired(NodeScoped, frozen=True, kw_only=True):
    """The healer found a node's replicas differing from the log and repaired it.

    `unknown`: the node runs a replica nothing wants (it is stopped). `missing`: a replica
    the log says runs there is no longer reported (it is ended and replaced)."""

    TYPE: ClassVar[str] = "dev.shoal.node.driftrepaired"
    kind: Literal["unknown", "missing"]
    replica_id: Name
    function: str = ""
    revision: NonNegInt = 0
    reason: str


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
