"""Typed payloads of every Shoal event, one frozen msgspec Struct per event type.

Each payload names its CloudEvents type (`TYPE`), its schema version (`SCHEMA`,
"major.minor": a reader accepts any minor of its major and ignores fields it does not
know) and its partition key (`key`: the function for function-scoped events, the node
for node-scoped ones).
"""

from __future__ import annotations

from events.payloads.base import (
    FINE_LATENCY_BOUNDS_MS,
    LAST_LOG_LINES,
    LATENCY_BOUNDS_MS,
    FunctionScoped,
    NodeScoped,
    Payload,
)
from events.payloads.claims import Claim, CommandsClaimed, NodeClaimed, ScaleClaimed
from events.payloads.functions import (
    ColdStartDemand,
    ContainerStats,
    FunctionDeleted,
    FunctionDeployed,
    FunctionRolledBack,
    FunctionUpdated,
    PlacementPending,
    RequestStats,
    ScaleDecision,
    ScaleRequested,
)
from events.payloads.nodes import (
    DriftRepaired,
    NodeCapacity,
    NodeCordoned,
    NodeDrained,
    NodeDrainRequested,
    NodeHeartbeat,
    NodeJoined,
    NodeLost,
    NodeReturned,
    NodeRuntimeChanged,
    NodeUncordoned,
)
from events.payloads.operations import CLUSTER_KEY, DecisionFailed, NodeLossSuspended
from events.payloads.replicas import (
    DrainReplica,
    ReplicaDraining,
    ReplicaEvent,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    StartReplica,
    StopReplica,
)
from events.payloads.secrets import SealedSecret, SecretRemoved, SecretSet
from events.payloads.tokens import Scope, TokenCreated, TokenRevoked
from events.payloads.traffic import (
    CanaryAnalysed,
    RevisionTagged,
    TrafficSplit,
    TrafficTarget,
)
from events.spec import FunctionSpec, ScalingMetric

__all__ = [
    "CLUSTER_KEY",
    "FINE_LATENCY_BOUNDS_MS",
    "LAST_LOG_LINES",
    "LATENCY_BOUNDS_MS",
    "CanaryAnalysed",
    "Claim",
    "ColdStartDemand",
    "CommandsClaimed",
    "ContainerStats",
    "DecisionFailed",
    "DrainReplica",
    "DriftRepaired",
    "FunctionDeleted",
    "FunctionDeployed",
    "FunctionRolledBack",
    "FunctionScoped",
    "FunctionSpec",
    "FunctionUpdated",
    "NodeCapacity",
    "NodeClaimed",
    "NodeCordoned",
    "NodeDrainRequested",
    "NodeDrained",
    "NodeHeartbeat",
    "NodeJoined",
    "NodeLossSuspended",
    "NodeLost",
    "NodeReturned",
    "NodeRuntimeChanged",
    "NodeScoped",
    "NodeUncordoned",
    "Payload",
    "PlacementPending",
    "ReplicaDraining",
    "ReplicaEvent",
    "ReplicaFailed",
    "ReplicaReady",
    "ReplicaStarting",
    "ReplicaStopped",
    "RequestStats",
    "RevisionTagged",
    "ScaleClaimed",
    "ScaleDecision",
    "ScaleRequested",
    "ScalingMetric",
    "Scope",
    "SealedSecret",
    "SecretRemoved",
    "SecretSet",
    "StartReplica",
    "StopReplica",
    "TokenCreated",
    "TokenRevoked",
    "TrafficSplit",
    "TrafficTarget",
]


ALL_PAYLOADS: tuple[type[Payload], ...] = (
    FunctionDeployed,
    FunctionUpdated,
    FunctionDeleted,
    FunctionRolledBack,
    ScaleRequested,
    TrafficSplit,
    RevisionTagged,
    CanaryAnalysed,
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
    NodeRuntimeChanged,
    NodeLossSuspended,
    DecisionFailed,
    TokenCreated,
    TokenRevoked,
    SecretSet,
    SecretRemoved,
    CommandsClaimed,
    NodeClaimed,
    ScaleClaimed,
)

PAYLOAD_BY_TYPE: dict[str, type[Payload]] = {p.TYPE: p for p in ALL_PAYLOADS}
