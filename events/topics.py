"""The topic registry: which topic holds which event, who may write and read it, its key,
partitions and retention.

A topic's name is its kind, a dot, and a namespace (`BusSettings.namespace`, default
"shoal"), so that several Shoal installations, or test runs, can share one Kafka cluster,
and so that one prefixed ACL per kind grants a role that kind in every namespace.

Every topic is written by the roles declared on it; where an event type may be said by
more than one role, it has a home on a topic of each, and a producer writes to the home of
its own role. The broker's ACLs (`events.acls`) and the consumers' checks
(`events.consumer.decoded`) both derive from these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiokafka.partitioner import murmur2

from events import types as t
from events.fencing import ELECTED

FOREVER = -1
HOUR_MS = 3_600_000

ROLES = ("api", "scheduler", "autoscaler", "healer", "node")
"""One Kafka principal per service role; each service connects as its role."""


@dataclass(frozen=True)
class Topic:
    suffix: str
    partitions: int
    retention_ms: int
    keyed_by: Literal["function", "node", "token", "secret", "topic"]
    history: bool
    """History topics keep every event forever (the audit log); metrics topics keep hours."""
    writers: tuple[str, ...]
    """The roles whose principals may write this topic."""

    def name(self, namespace: str) -> str:
        return f"{self.suffix}.{namespace}"

    def holds(self, name: str) -> bool:
        """Whether a topic name (of any namespace) is one of this kind."""
        return name.startswith(f"{self.suffix}.")


FUNCTIONS = Topic("functions", 6, FOREVER, "function", history=True, writers=("api",))
SCALE = Topic(
    "scale", 6, FOREVER, "function", history=True, writers=("autoscaler", "scheduler", "healer")
)
REPLICAS = Topic("replicas", 6, FOREVER, "function", history=True, writers=("node",))
NODES = Topic("nodes", 6, FOREVER, "node", history=True, writers=("api", "scheduler", "healer"))
NODE_STATUS = Topic("node-status", 6, FOREVER, "node", history=True, writers=("node",))
NODE_COMMANDS = Topic(
    "node-commands", 32, FOREVER, "node", history=True, writers=("scheduler", "healer")
)
HEARTBEATS = Topic("heartbeats", 6, 2 * HOUR_MS, "node", history=False, writers=("node",))
REQUEST_STATS = Topic("request-stats", 6, 6 * HOUR_MS, "function", history=False, writers=("api",))
CONTAINER_STATS = Topic(
    "container-stats", 6, 6 * HOUR_MS, "function", history=False, writers=("node",)
)
DEMAND = Topic("demand", 6, 6 * HOUR_MS, "function", history=False, writers=("api",))
TOKENS = Topic("tokens", 1, FOREVER, "token", history=True, writers=("api",))
LEADERS = Topic("leaders", 1, HOUR_MS, "topic", history=False, writers=())
"""Never written: the deciders' consumer groups subscribe to its one partition, and the
member it is assigned to is its role's leader (`services.common.leadership`); the api
instances' group subscribes to it to learn its members (`services.api.peers`)."""
SECRETS = Topic("secrets", 1, FOREVER, "secret", history=True, writers=("api",))
DEAD_LETTER = Topic("dead-letter", 1, FOREVER, "topic", history=True, writers=ROLES)

ALL_TOPICS: tuple[Topic, ...] = (
    FUNCTIONS,
    SCALE,
    REPLICAS,
    NODES,
    NODE_STATUS,
    NODE_COMMANDS,
    HEARTBEATS,
    REQUEST_STATS,
    CONTAINER_STATS,
    DEMAND,
    TOKENS,
    SECRETS,
    LEADERS,
    DEAD_LETTER,
)

WORLD_TOPICS: tuple[Topic, ...] = (
    FUNCTIONS,
    SCALE,
    REPLICAS,
    NODES,
    NODE_STATUS,
    HEARTBEATS,
    NODE_COMMANDS,
)
"""What the world's fold (`events.projections.world`) is made of."""

READS: dict[str, tuple[Topic, ...]] = {
    "api": (*WORLD_TOPICS, TOKENS, SECRETS, REQUEST_STATS, CONTAINER_STATS, LEADERS),
    "scheduler": (*WORLD_TOPICS, LEADERS),
    "healer": (*WORLD_TOPICS, REQUEST_STATS, LEADERS),
    "autoscaler": (
        FUNCTIONS,
        SCALE,
        REPLICAS,
        NODES,
        NODE_STATUS,
        REQUEST_STATS,
        CONTAINER_STATS,
        DEMAND,
        LEADERS,
    ),
    "node": (NODE_COMMANDS, NODES),
}
"""The topics each role's principal may read (the dead-letter topic is the operators')."""

HOMES: dict[type[t.Payload], tuple[Topic, ...]] = {
    t.FunctionDeployed: (FUNCTIONS,),
    t.FunctionUpdated: (FUNCTIONS,),
    t.FunctionDeleted: (FUNCTIONS,),
    t.FunctionRolledBack: (FUNCTIONS, SCALE),
    t.ScaleRequested: (FUNCTIONS,),
    t.TrafficSplit: (FUNCTIONS,),
    t.RevisionTagged: (FUNCTIONS,),
    t.CanaryAnalysed: (SCALE,),
    t.RequestStats: (REQUEST_STATS,),
    t.ColdStartDemand: (DEMAND,),
    t.ContainerStats: (CONTAINER_STATS,),
    t.ScaleDecision: (SCALE,),
    t.PlacementPending: (SCALE,),
    t.StartReplica: (NODE_COMMANDS,),
    t.DrainReplica: (NODE_COMMANDS,),
    t.StopReplica: (NODE_COMMANDS,),
    t.ReplicaStarting: (REPLICAS,),
    t.ReplicaReady: (REPLICAS,),
    t.ReplicaDraining: (REPLICAS,),
    t.ReplicaStopped: (REPLICAS,),
    t.ReplicaFailed: (REPLICAS,),
    t.NodeJoined: (NODE_STATUS,),
    t.NodeLost: (NODES,),
    t.NodeReturned: (NODES,),
    t.DriftRepaired: (NODES,),
    t.NodeCordoned: (NODES,),
    t.NodeUncordoned: (NODES,),
    t.NodeDrainRequested: (NODES,),
    t.NodeDrained: (NODES,),
    t.NodeRuntimeChanged: (NODE_STATUS,),
    t.NodeLossSuspended: (NODES,),
    t.DecisionFailed: (SCALE,),
    t.NodeHeartbeat: (HEARTBEATS,),
    t.TokenCreated: (TOKENS,),
    t.TokenRevoked: (TOKENS,),
    t.SecretSet: (SECRETS,),
    t.SecretRemoved: (SECRETS,),
    t.CommandsClaimed: (NODE_COMMANDS,),
    t.NodeClaimed: (NODES,),
    t.ScaleClaimed: (SCALE,),
}
"""Where each event type may be written: the api's rollbacks (a user's) go with its other
function events, the healer's (a repair) with the deciders' decisions."""


def leader_group(role: str, namespace: str) -> str:
    """The consumer group whose members are a decider role's instances."""
    return f"leader.{role}.{namespace}"


def peer_group(role: str, namespace: str) -> str:
    """The consumer group whose members are the api's instances (they share replicas)."""
    return f"peers.{role}.{namespace}"


def group_of(role: str, namespace: str) -> str | None:
    """The consumer group a role's instances meet in, if they meet."""
    if role in ELECTED:
        return leader_group(role, namespace)
    return peer_group(role, namespace) if role == "api" else None


def topic_of(payload_type: type[t.Payload], role: str | None = None) -> Topic:
    """The topic a producer of `role` writes this type to (its first home otherwise)."""
    homes = HOMES[payload_type]
    return next((topic for topic in homes if role in topic.writers), homes[0])


def is_home(payload_type: type[t.Payload], topic_name: str) -> bool:
    """Whether an event of this type may stand on the named topic."""
    return any(topic.holds(topic_name) for topic in HOMES[payload_type])


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the producer uses) gives a key.

    A node-agent reads only its own node's partition of the command topic with this.
    """
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
