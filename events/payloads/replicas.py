"""Commands to nodes and what nodes report about replicas."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from events.payloads.base import (
    LAST_LOG_LINES,
    Endpoint,
    FunctionScoped,
    LogLine,
    Name,
    NodeScoped,
    NonNegFloat,
    NonNegInt,
    PosInt,
    ReplicaId,
    Text,
)
from events.payloads.secrets import SealedSecrets
from events.spec import FunctionSpec

# ---- node commands (topic shoal.node-commands, keyed by node) -----------------------------


class StartReplica(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.command.start"
    SCHEMA: ClassVar[str] = "1.3"
    function: Name
    revision: PosInt
    replica_id: ReplicaId
    spec: FunctionSpec
    ready_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    node_generation: NonNegInt = 0
    """How many times the node had been lost when this was placed: a NodeLost of this
    generation or later ends it, whichever topic is read first."""
    secrets: SealedSecrets = []
    """Its revision's secrets, sealed: the node opens them into files for the replica."""
    epoch: NonNegInt = 0
    """Its sender's epoch as its role's leader (`events.fencing`)."""


class DrainReplica(NodeScoped, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "dev.shoal.command.drain"
    SCHEMA: ClassVar[str] = "1.1"
    function: Name
    replica_id: ReplicaId
    drain_s: NonNegFloat = 2.0
    reason: Text = ""
    epoch: NonNegInt = 0


class StopReplica(NodeScoped, frozen=True, kw_only=True):
    """Stop at once, without a drain period (e.g. a replica moved away from a lost node)."""

    TYPE: ClassVar[str] = "dev.shoal.command.stop"
    SCHEMA: ClassVar[str] = "1.1"
    function: Name
    replica_id: ReplicaId
    reason: Text = ""
    epoch: NonNegInt = 0


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
