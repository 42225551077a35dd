"""The audit timeline (pure): each event as one line of who did what and why, and the
filters `shoal audit` applies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events import types as t
from events.envelope import Envelope


@dataclass(frozen=True)
class Entry:
    time: datetime
    id: str
    who: str
    """The service that published it (its instance follows in `source`)."""
    source: str
    type: str
    function: str
    node: str
    text: str
    causation: str | None

    def line(self) -> str:
        cause = f"  (caused by {self.causation})" if self.causation else ""
        return f"{self.time.isoformat(timespec='milliseconds')}  {self.who:<10} {self.text}{cause}"

    def as_json(self) -> dict[str, object]:
        return {
            "time": self.time.isoformat(),
            "id": self.id,
            "who": self.who,
            "source": self.source,
            "type": self.type,
            "function": self.function or None,
            "node": self.node or None,
            "text": self.text,
            "causation_id": self.causation,
        }


def service_of(source: str) -> str:
    """`/shoal/autoscaler/autoscaler-vm-1` -> `autoscaler`."""
    parts = [p for p in source.split("/") if p]
    return parts[1] if len(parts) >= 2 and parts[0] == "shoal" else source


def entry(envelope: Envelope) -> Entry:
    data = envelope.data
    return Entry(
        time=envelope.time,
        id=envelope.id,
        who=service_of(envelope.source),
        source=envelope.source,
        type=envelope.type,
        function=getattr(data, "function", "") or "",
        node=getattr(data, "node", "") or "",
        text=describe(data),
        causation=envelope.causationid,
    )


def _replica(e: t.ReplicaEvent, what: str) -> str:
    return f"replica {e.replica_id} of {e.function} r{e.revision} on {e.node} {what}"


def describe(p: t.Payload) -> str:
    """What happened and why, in a sentence."""
    match p:
        case t.FunctionDeployed():
            return f"deployed {p.function} revision {p.revision} ({p.spec.image})" + _by(
                p.requested_by
            )
        case t.FunctionUpdated():
            return f"updated {p.function} to revision {p.revision} ({p.spec.image})" + _by(
                p.requested_by
            )
        case t.FunctionDeleted():
            return f"deleted {p.function}" + _by(p.requested_by)
        case t.FunctionRolledBack():
            return (
                f"rolled back {p.function} revision {p.from_revision} -> {p.to_revision}: "
                f"{p.reason}"
            )
        case t.ScaleRequested():
            return f"pinned {p.function} at {p.replicas} replicas" + _by(p.requested_by)
        case t.ScaleDecision():
            mode = " (panic)" if p.panic else ""
            return f"scaled {p.function} {p.previous} -> {p.desired}{mode}: {p.reason}"
        case t.PlacementPending():
            return f"could not place {p.pending} replica(s) of {p.function}: {p.reason}"
        case t.RequestStats():
            return (
                f"{p.function}: {p.requests} requests, {p.errors} errors in {p.interval_s:g} s, "
                f"concurrency {p.mean_concurrency:.1f} (peak {p.peak_concurrency}), "
                f"{p.queue_depth} queued, from {p.api_instance}"
            )
        case t.ColdStartDemand():
            return f"{p.function}: {p.queued} request(s) waiting for a replica (cold start)"
        case t.ContainerStats():
            return (
                f"{p.replica_id} of {p.function}: CPU {p.cpu_fraction:.0%} of its limit, "
                f"memory {p.memory_bytes / 2**20:.0f} MiB"
            )
        case t.StartReplica():
            return (
                f"start {p.replica_id} of {p.function} r{p.revision} on {p.node} "
                f"({p.spec.cpu:g} CPU, {p.spec.memory_mb} MB)"
            )
        case t.DrainReplica():
            return f"drain {p.replica_id} of {p.function} on {p.node}: {p.reason or 'asked'}"
        case t.StopReplica():
            return f"stop {p.replica_id} of {p.function} on {p.node}: {p.reason or 'asked'}"
        case t.ReplicaStarting():
            return _replica(p, "starting")
        case t.ReplicaReady():
            return _replica(p, f"ready at {p.endpoint}")
        case t.ReplicaDraining():
            return _replica(p, "draining")
        case t.ReplicaStopped():
            return _replica(p, f"stopped: {p.reason or 'asked'}")
        case t.ReplicaFailed():
            return _replica(p, f"failed: {p.summary()}")
        case t.NodeJoined():
            c = p.capacity
            return f"node {p.node} joined ({p.runtime}, {c.cpus:g} CPUs, {c.memory_mb} MB)"
        case t.NodeHeartbeat():
            return (
                f"node {p.node} heartbeat {p.seq}: {p.replicas} replicas, "
                f"{p.used_cpus:g}/{p.capacity.cpus:g} CPUs reserved"
            )
        case t.NodeLost():
            return f"node {p.node} lost: {p.evidence}"
        case t.NodeReturned():
            moved = ", ".join(p.moved_replicas) or "nothing"
            return f"node {p.node} came back after {p.lost_for_s:.1f} s; stopping {moved}"
        case t.DriftRepaired():
            return f"repaired drift on {p.node} ({p.kind} {p.replica_id}): {p.reason}"
        case t.NodeCordoned():
            return f"node {p.node} cordoned" + _by(p.requested_by)
        case t.NodeUncordoned():
            return f"node {p.node} uncordoned" + _by(p.requested_by)
        case t.NodeDrainRequested():
            return f"node {p.node} to be drained" + _by(p.requested_by)
        case t.NodeDrained():
            return f"node {p.node} drained: no replica left"
    return type(p).__name__


def _by(who: str) -> str:
    return f" (by {who})" if who else ""


@dataclass(frozen=True)
class Filters:
    function: str | None = None
    node: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    types: Sequence[str] = field(default_factory=tuple)
    """Event type names or suffixes: `dev.shoal.node.lost`, `node.lost` or `NodeLost`."""

    def accepts(self, envelope: Envelope) -> bool:
        data = envelope.data
        if self.function is not None and getattr(data, "function", None) != self.function:
            return False
        if self.node is not None and getattr(data, "node", None) != self.node:
            return False
        if self.since is not None and envelope.time < self.since:
            return False
        if self.until is not None and envelope.time > self.until:
            return False
        if self.types:
            name = type(data).__name__
            return any(
                wanted in (envelope.type, name) or envelope.type.endswith("." + wanted)
                for wanted in self.types
            )
        return True


def timeline(envelopes: Iterable[Envelope], filters: Filters) -> list[Entry]:
    """The accepted events in time order (ties kept in the order they were read)."""
    chosen = [e for e in envelopes if filters.accepts(e)]
    chosen.sort(key=lambda e: e.time)
    return [entry(e) for e in chosen]
