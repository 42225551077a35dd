"""The topic registry: which topic holds which event, its key, partitions and retention.

Topic names carry a namespace prefix (`BusSettings.namespace`, default "shoal") so that
several Shoal installations, or test runs, can share one Kafka cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiokafka.partitioner import murmur2

from events import types as t

FOREVER = -1
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Topic:
    suffix: str
    partitions: int
    retention_ms: int
    keyed_by: Literal["function", "node", "topic"]
    history: bool
    """History topics keep every event forever (the audit log); metrics topics keep hours."""

    def name(self, namespace: str) -> str:
        return f"{namespace}.{self.suffix}"


FUNCTIONS = Topic("functions", 6, FOREVER, "function", history=True)
SCALE = Topic("scale", 6, FOREVER, "function", history=True)
REPLICAS = Topic("replicas", 6, FOREVER, "function", history=True)
NODES = Topic("nodes", 6, FOREVER, "node", history=True)
NODE_COMMANDS = Topic("node-commands", 32, FOREVER, "node", history=True)
HEARTBEATS = Topic("heartbeats", 6, 2 * HOUR_MS, "node", history=False)
REQUEST_STATS = Topic("request-stats", 6, 6 * HOUR_MS, "function", history=False)
CONTAINER_STATS = Topic("container-stats", 6, 6 * HOUR_MS, "function", history=False)
DEMAND = Topic("demand", 6, 6 * HOUR_MS, "function", history=False)
DEAD_LETTER = Topic("dead-letter", 1, FOREVER, "topic", history=True)

ALL_TOPICS: tuple[Topic, ...] = (
    FUNCTIONS,
    SCALE,
    REPLICAS,
    NODES,
    NODE_COMMANDS,
    HEARTBEATS,
    REQUEST_STATS,
    CONTAINER_STATS,
    DEMAND,
    DEAD_LETTER,
)

TOPIC_OF_PAYLOAD: dict[type[t.Payload], Topic] = {
    t.FunctionDeployed: FUNCTIONS,
    t.FunctionUpdated: FUNCTIONS,
    t.FunctionDeleted: FUNCTIONS,
    t.FunctionRolledBack: FUNCTIONS,
    t.ScaleRequested: FUNCTIONS,
    t.RequestStats: REQUEST_STATS,
    t.ColdStartDemand: DEMAND,
    t.ContainerStats: CONTAINER_STATS,
    t.ScaleDecision: SCALE,
    t.PlacementPending: SCALE,
    t.StartReplica: NODE_COMMANDS,
    t.DrainReplica: NODE_COMMANDS,
    t.StopReplica: NODE_COMMANDS,
    t.ReplicaStarting: REPLICAS,
    t.ReplicaReady: REPLICAS,
    t.ReplicaDraining: REPLICAS,
    t.ReplicaStopped: REPLICAS,
    t.ReplicaFailed: REPLICAS,
    t.NodeJoined: NODES,
    t.NodeLost: NODES,
    t.NodeReturned: NODES,
    t.DriftRepaired: NODES,
    t.NodeCordoned: NODES,
    t.NodeUncordoned: NODES,
    t.NodeDrainRequested: NODES,
    t.NodeDrained: NODES,
    t.NodeRuntimeChanged: NODES,
    t.NodeLossSuspended: NODES,
    t.DecisionFailed: SCALE,
    t.NodeHeartbeat: HEARTBEATS,
}


def topic_of(payload_type: type[t.Payload]) -> Topic:
    return TOPIC_OF_PAYLOAD[payload_type]


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the producer uses) gives a key.

    A node-agent reads only its own node's partition of the command topic with this.
    """
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
