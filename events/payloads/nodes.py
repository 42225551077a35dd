"""Nodes: joins, heartbeats, losses, maintenance and repairs."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from events.payloads.base import (
    NodeScoped,
    NonNegFloat,
    NonNegInt,
    PosInt,
    ReplicaId,
    Text,
)

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
    SCHEMA: ClassVar[str] = "1.2"
    seq: NonNegInt
    capacity: NodeCapacity
    used_cpus: NonNegFloat
    """CPUs its replicas request (what placement reserves)."""
    used_memory_mb: NonNegFloat
    """Memory its replicas request, MB."""
    replicas: NonNegInt
    cpu_cores_used: NonNegFloat = 0.0
    """CPUs its replicas used, as last measured."""
    memory_mb_used: NonNegFloat = 0.0
    """Memory its replicas used, MB, as last measured."""
    replica_ids: Annotated[list[ReplicaId], msgspec.Meta(max_length=5000)] = []
    """The replicas the agent runs (starting, ready or draining), for drift repair; none
    while it cannot see its container engine."""
    runtime_ok: bool = True
    """Whether the agent can reach its container engine."""
    busy_ids: Annotated[list[ReplicaId], msgspec.Meta(max_length=5000)] = []
    """Of `replica_ids`, those that had a connection open or used CPU when last looked at:
    a scale-down stops the others first."""


class NodeLost(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.node.lost"
    SCHEMA: ClassVar[str] = "1.2"
    last_heartbeat_at: Annotated[str, msgspec.Meta(max_length=64)]
    timeout_s: NonNegFloat
    evidence: Text
    generation: NonNegInt = 0
    """The generation of the node that ends: every replica placed on it with this
    generation or an earlier one (`StartReplica.node_generation`) is lost with it."""
    epoch: NonNegInt = 0
    """Its sender's epoch as its role's leader (`events.fencing`)."""


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
    SCHEMA: ClassVar[str] = "1.1"
    lost_for_s: NonNegFloat
    moved_replicas: Annotated[list[ReplicaId], msgspec.Meta(max_length=5000)] = []
    epoch: NonNegInt = 0
    """Its sender's epoch as its role's leader (`events.fencing`)."""


class DriftRepaired(NodeScoped, frozen=True, kw_only=True):
    """The healer found a node's replicas differing from the log and repaired it.

    `unknown`: the node runs a replica nothing wants (it is stopped). `missing`: a replica
    the log says runs there is no longer reported (it is ended and replaced)."""

    TYPE: ClassVar[str] = "dev.shoal.node.driftrepaired"
    SCHEMA: ClassVar[str] = "1.1"
    kind: Literal["unknown", "missing"]
    replica_id: ReplicaId
    function: Annotated[str, msgspec.Meta(max_length=253)] = ""
    revision: NonNegInt = 0
    reason: Text
    epoch: NonNegInt = 0
    """Its sender's epoch as its role's leader (`events.fencing`)."""


class NodeRuntimeChanged(NodeScoped, frozen=True, kw_only=True):
    """The node's agent lost its container engine (`available` False: the node takes no
    new replica, and those it ran are told failed), or found it again."""

    TYPE: ClassVar[str] = "dev.shoal.node.runtimechanged"
    available: bool
    reason: Text
    lost_replicas: Annotated[list[ReplicaId], msgspec.Meta(max_length=5000)] = []
