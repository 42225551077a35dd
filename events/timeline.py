"""The audit timeline (pure): each event as one line of who did what and why, and the
filters `shoal audit` applies."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events import types as t
from events.envelope import Envelope
from events.payloads.secrets import versions_of


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


def _deployed(p: t.FunctionDeployed) -> str:
    return (
        f"deployed {p.function} revision {p.revision} ({p.spec.image}{_secrets(p.secrets)})"
        + _by(p.requested_by)
    )


def _updated(p: t.FunctionUpdated) -> str:
    return (
        f"updated {p.function} to revision {p.revision} ({p.spec.image}{_secrets(p.secrets)})"
        + _by(p.requested_by)
    )


def _secrets(sealed: Sequence[t.SealedSecret]) -> str:
    """A revision's secrets by name and version (their values are never shown)."""
    return f"; secrets {versions_of(sealed)}" if sealed else ""


def _decision(p: t.ScaleDecision) -> str:
    mode = " (panic)" if p.panic else ""
    shared = ", ".join(f"r{r}: {n}" for r, n in sorted(p.per_revision.items()))
    split = f" ({shared})" if shared else ""
    return f"scaled {p.function} {p.previous} -> {p.desired}{split}{mode}: {p.reason}"


def _split(p: t.TrafficSplit) -> str:
    shares = ", ".join(f"r{target.revision} {target.percent}%" for target in p.targets)
    return f"split {p.function}'s calls: {shares}" + _by(p.requested_by)


def _tagged(p: t.RevisionTagged) -> str:
    if not p.revision:
        return f"untagged {p.tag} of {p.function}" + _by(p.requested_by)
    return f"tagged {p.function} r{p.revision} {p.tag!r} (/fn/{p.function}@{p.tag}/)" + _by(
        p.requested_by
    )


def _analysed(p: t.CanaryAnalysed) -> str:
    head = f"canary {p.function} r{p.revision} vs r{p.stable}"
    if p.decision == "promote":
        what = f"promoted to {p.percent}%" + (f" (step {p.step})" if p.percent < 100 else "")
    elif p.decision == "abort":
        what = f"aborted at step {p.step}"
    else:
        what = f"waits at {p.percent}% (step {p.step})"
    return f"{head}: {what}: {p.reason}" + evidence(p.inputs)


def evidence(inputs: dict[str, float]) -> str:
    """A canary analysis's numbers, as a person reads them."""
    if "canary_requests" not in inputs:
        return ""

    def side(who: str) -> str:
        count, ratio = inputs.get(f"{who}_requests", 0), inputs.get(f"{who}_error_ratio", 0)
        p95 = inputs.get(f"{who}_p95_ms", 0)
        return f"{who} {count:.0f} calls, {ratio:.1%} 5xx, p95 {p95:.0f} ms"

    return f" [{side('canary')}; {side('stable')}]"


def _pending(p: t.PlacementPending) -> str:
    if not p.pending:
        return f"placed what was pending of {p.function}"
    return f"could not place {p.pending} replica(s) of {p.function}: {p.reason}"


def _request_stats(p: t.RequestStats) -> str:
    return (
        f"{p.function}{f' r{p.revision}' if p.revision else ''}: {p.requests} requests, "
        f"{p.errors} errors in {p.interval_s:g} s, "
        f"concurrency {p.mean_concurrency:.1f} (peak {p.peak_concurrency}), "
        f"{p.queue_depth} queued, from {p.api_instance}"
    )


def _container_stats(p: t.ContainerStats) -> str:
    return (
        f"{p.replica_id} of {p.function}: CPU {p.cpu_fraction:.0%} of its limit, "
        f"memory {p.memory_bytes / 2**20:.0f} MiB"
    )


def _start(p: t.StartReplica) -> str:
    return (
        f"start {p.replica_id} of {p.function} r{p.revision} on {p.node} "
        f"({p.spec.cpu:g} CPU, {p.spec.memory_mb} MB)"
    )


def _joined(p: t.NodeJoined) -> str:
    c = p.capacity
    return f"node {p.node} joined ({p.runtime}, {c.cpus:g} CPUs, {c.memory_mb} MB)"


def _heartbeat(p: t.NodeHeartbeat) -> str:
    return (
        f"node {p.node} heartbeat {p.seq}: {p.replicas} replicas, "
        f"{p.used_cpus:g}/{p.capacity.cpus:g} CPUs reserved"
    )


def _returned(p: t.NodeReturned) -> str:
    moved = ", ".join(p.moved_replicas) or "nothing"
    return f"node {p.node} came back after {p.lost_for_s:.1f} s; stopping {moved}"


_DESCRIPTIONS: dict[type[t.Payload], Callable[[Any], str]] = {
    t.FunctionDeployed: _deployed,
    t.FunctionUpdated: _updated,
    t.FunctionDeleted: lambda p: f"deleted {p.function}" + _by(p.requested_by),
    t.FunctionRolledBack: lambda p: (
        f"rolled back {p.function} revision {p.from_revision} -> {p.to_revision}: {p.reason}"
        + evidence(p.inputs)
    ),
    t.TrafficSplit: _split,
    t.RevisionTagged: _tagged,
    t.CanaryAnalysed: _analysed,
    t.ScaleRequested: lambda p: (
        f"pinned {p.function} at {p.replicas} replicas" + _by(p.requested_by)
    ),
    t.ScaleDecision: _decision,
    t.PlacementPending: _pending,
    t.RequestStats: _request_stats,
    t.ColdStartDemand: lambda p: (
        f"{p.function}: {p.queued} request(s) waiting for a replica (cold start)"
    ),
    t.ContainerStats: _container_stats,
    t.StartReplica: _start,
    t.DrainReplica: lambda p: (
        f"drain {p.replica_id} of {p.function} on {p.node}: {p.reason or 'asked'}"
    ),
    t.StopReplica: lambda p: (
        f"stop {p.replica_id} of {p.function} on {p.node}: {p.reason or 'asked'}"
    ),
    t.ReplicaStarting: lambda p: _replica(p, "starting"),
    t.ReplicaReady: lambda p: _replica(p, f"ready at {p.endpoint}"),
    t.ReplicaDraining: lambda p: _replica(p, "draining"),
    t.ReplicaStopped: lambda p: _replica(p, f"stopped: {p.reason or 'asked'}"),
    t.ReplicaFailed: lambda p: _replica(p, f"failed: {p.summary()}"),
    t.NodeJoined: _joined,
    t.NodeHeartbeat: _heartbeat,
    t.NodeLost: lambda p: f"node {p.node} lost: {p.evidence}",
    t.NodeReturned: _returned,
    t.DriftRepaired: lambda p: f"repaired drift on {p.node} ({p.kind} {p.replica_id}): {p.reason}",
    t.CommandsClaimed: lambda p: f"commands to {p.node} claimed by the leader of epoch {p.epoch}",
    t.NodeClaimed: lambda p: f"node {p.node}'s fate claimed by the leader of epoch {p.epoch}",
    t.ScaleClaimed: lambda p: f"scaling of {p.function} claimed by the leader of epoch {p.epoch}",
    t.NodeCordoned: lambda p: f"node {p.node} cordoned" + _by(p.requested_by),
    t.NodeUncordoned: lambda p: f"node {p.node} uncordoned" + _by(p.requested_by),
    t.NodeDrainRequested: lambda p: f"node {p.node} to be drained" + _by(p.requested_by),
    t.NodeDrained: lambda p: f"node {p.node} drained: no replica left",
    t.NodeRuntimeChanged: lambda p: (
        f"node {p.node} container engine {'back' if p.available else 'unreachable'}: {p.reason}"
    ),
    t.NodeLossSuspended: lambda p: (
        f"{'no node declared lost' if p.suspended else 'nodes watched again'}: {p.reason}"
    ),
    t.DecisionFailed: lambda p: (
        f"{p.decider} could not decide about {p.subject} (retry in {p.retry_in_s:g} s): {p.error}"
    ),
    t.TokenCreated: lambda p: (
        f"token {p.token_id} ({p.scope}"
        + (f" of {', '.join(p.functions)}" if p.functions else "")
        + ")"
        + (f" {p.name!r}" if p.name else "")
        + " created"
        + _by(p.created_by)
    ),
    t.TokenRevoked: lambda p: f"token {p.token_id} revoked" + _by(p.revoked_by),
    t.SecretSet: lambda p: (
        f"secret {p.name} set to version {p.sealed.version} (keys {', '.join(p.sealed.keys)})"
        + _by(p.set_by)
    ),
    t.SecretRemoved: lambda p: f"secret {p.name} removed" + _by(p.removed_by),
}


def describe(p: t.Payload) -> str:
    """What happened and why, in a sentence."""
    found = _DESCRIPTIONS.get(type(p))
    return found(p) if found is not None else type(p).__name__


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
