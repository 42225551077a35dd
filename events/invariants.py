"""What must hold of the whole log, checked by reading it (pure): `shoal audit --check`.

- `started once`: no replica id is started by two commands (the same command delivered
  twice has one event id and counts once);
- `start answered`: a start command is followed by its node's report of the replica, or by
  the loss of its node (of the generation it was placed in, or a later one);
- `stop answered`: a stop or drain of a replica the log started is followed by its end
  (stopped or failed), or by the loss of its node;
- `reports follow commands`: a node reports only replicas it was told to start;
- `revisions move on`: a function's new revisions are numbered above every earlier one,
  across deletions (a scaling change keeps its revision);
- `within desired and surge`: a start command finds fewer live replicas of its function
  (started, not ended, not told to stop or drain, not on a node lost since; one told so
  within `ROUND_S` after the start, in the same round of the scheduler, neither) than the
  desired count plus the rollout surge (plus two for each revision beyond the first when
  the count is shared between revisions), the desired count being the highest the
  function's decisions named within `LAG_S` before it, or its last (a scheduler acts on
  a decision a moment after it is taken);
- `decided by a leader`: every decider's command or decision carries the epoch of a
  leader of its role (a standby, which has none, never decides);
- `deposed not obeyed`: no decider's event obeyed (not refused by its readers,
  `events.fencing`) is of an older epoch of its role than one sent before it (by the
  senders' clocks): one leader at a time.

A command younger than `grace_s` at the log's end may still be answered: it is not judged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.envelope import Envelope
from events.fencing import ELECTED, Fence, role_of
from events.projections.world import FENCED
from events.types import (
    DrainReplica,
    FunctionDeployed,
    FunctionUpdated,
    NodeLost,
    ReplicaEvent,
    ReplicaFailed,
    ReplicaStopped,
    ScaleDecision,
    StartReplica,
    StopReplica,
)

RULES = (
    "started once",
    "start answered",
    "stop answered",
    "reports follow commands",
    "revisions move on",
    "within desired and surge",
    "decided by a leader",
    "deposed not obeyed",
)
MAX_SURGE = 1
"""Replicas a rollout or a node's evacuation may start beyond the desired count (the
scheduler's `plan.MAX_SURGE`)."""
LAG_S = 5.0
ROUND_S = 1.0


@dataclass(frozen=True)
class Violation:
    rule: str
    text: str
    events: tuple[str, ...]
    """The ids of the events involved."""


@dataclass
class Report:
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    """How many things each rule looked at."""
    violations: list[Violation] = field(default_factory=list)


@dataclass
class _Replica:
    starts: dict[str, Envelope] = field(default_factory=dict)
    stops: list[Envelope] = field(default_factory=list)
    reports: list[Envelope] = field(default_factory=list)
    ended: bool = False


def check(envelopes: Iterable[Envelope], *, grace_s: float = 30.0) -> Report:
    """Every rule over the events, given in the order they were read (each partition's
    order, as every reader meets them): what its readers refused as a deposed leader's
    (`events.fencing`) is left out, then each event is placed by its time."""
    events = sorted(obeyed({e.id: e for e in envelopes}.values()), key=lambda e: e.time)
    report = Report()
    if not events:
        return report
    before = events[-1].time - timedelta(seconds=grace_s)
    replicas: defaultdict[str, _Replica] = defaultdict(_Replica)
    lost: defaultdict[str, list[int]] = defaultdict(list)
    newest: dict[str, int] = {}
    for envelope in events:
        if type(envelope.data) in FENCED:
            _check_leader(report, envelope, envelope.data.epoch, newest)  # type: ignore[attr-defined]
        _note(envelope, replicas, lost)
    for replica_id, seen in sorted(replicas.items()):
        _check_replica(report, replica_id, seen, lost, before)
    _check_revisions(report, events)
    _check_surge(report, events)
    return report


def obeyed(envelopes: Iterable[Envelope]) -> list[Envelope]:
    """The events in read order, without those a reader refuses as a deposed leader's."""
    fence = Fence()
    return [
        e
        for e in envelopes
        if type(e.data) not in FENCED
        or fence.admits(FENCED[type(e.data)], e.subject, e.source, e.data.epoch)  # type: ignore[attr-defined]
    ]


def _check_leader(report: Report, envelope: Envelope, epoch: int, newest: dict[str, int]) -> None:
    role = role_of(envelope.source)
    if role in ELECTED:
        report.checked["decided by a leader"] += 1
        if epoch == 0:
            text = f"{role} {type(envelope.data).__name__} with no leader's epoch"
            report.violations.append(Violation("decided by a leader", text, (envelope.id,)))
            return
    report.checked["deposed not obeyed"] += 1
    if epoch < newest.get(role, 0):
        what = type(envelope.data).__name__
        text = f"{role} {what} of epoch {epoch} obeyed after one of epoch {newest[role]}"
        report.violations.append(Violation("deposed not obeyed", text, (envelope.id,)))
    newest[role] = max(newest.get(role, 0), epoch)


def _note(
    envelope: Envelope,
    replicas: defaultdict[str, _Replica],
    lost: defaultdict[str, list[int]],
) -> None:
    data = envelope.data
    if isinstance(data, StartReplica):
        replicas[data.replica_id].starts[envelope.id] = envelope
    elif isinstance(data, StopReplica | DrainReplica):
        replicas[data.replica_id].stops.append(envelope)
    elif isinstance(data, ReplicaEvent):
        seen = replicas[data.replica_id]
        seen.reports.append(envelope)
        seen.ended = seen.ended or isinstance(data, ReplicaStopped | ReplicaFailed)
    elif isinstance(data, NodeLost):
        lost[data.node].append(data.generation)


def _node_lost(lost: defaultdict[str, list[int]], node: str, generation: int) -> bool:
    """Whether the node was declared lost in the generation a replica was placed in, or a
    later one (times on events of different hosts are not compared)."""
    return any(g >= generation for g in lost.get(node, ()))


def _check_replica(
    report: Report,
    replica_id: str,
    seen: _Replica,
    lost: defaultdict[str, list[int]],
    before: datetime,
) -> None:
    starts = sorted(seen.starts.values(), key=lambda e: e.time)
    report.checked["started once"] += 1 if starts else 0
    if len(starts) > 1:
        text = f"replica {replica_id} was started by {len(starts)} commands"
        report.violations.append(Violation("started once", text, tuple(e.id for e in starts)))
    for start in starts:
        command: StartReplica = start.data  # type: ignore[assignment]
        if start.time > before:
            continue
        report.checked["start answered"] += 1
        if not seen.reports and not _node_lost(lost, command.node, command.node_generation):
            text = f"start of {replica_id} on {command.node}: no report and no loss of the node"
            report.violations.append(Violation("start answered", text, (start.id,)))
    report.checked["reports follow commands"] += 1 if seen.reports else 0
    if starts:
        _check_stops(report, replica_id, seen, lost, before)
    elif seen.reports:
        first = min(seen.reports, key=lambda e: e.time)
        text = f"replica {replica_id} was reported by {first.data.node} but never started"  # type: ignore[attr-defined]
        report.violations.append(Violation("reports follow commands", text, (first.id,)))


def _check_stops(
    report: Report,
    replica_id: str,
    seen: _Replica,
    lost: defaultdict[str, list[int]],
    before: datetime,
) -> None:
    for stop in seen.stops:
        if stop.time > before:
            continue
        report.checked["stop answered"] += 1
        node: str = stop.data.node  # type: ignore[attr-defined]
        if not seen.ended and not _node_lost(lost, node, 0):
            text = f"{type(stop.data).__name__} of {replica_id} on {node}: it never ended"
            report.violations.append(Violation("stop answered", text, (stop.id,)))


def _check_revisions(report: Report, events: list[Envelope]) -> None:
    newest: dict[str, tuple[int, str]] = {}
    for envelope in events:
        data = envelope.data
        if not isinstance(data, FunctionDeployed | FunctionUpdated):
            continue
        report.checked["revisions move on"] += 1
        top, top_id = newest.get(data.function, (0, ""))
        patched = isinstance(data, FunctionUpdated) and data.revision == top
        if data.revision < top or (data.revision == top and not patched):
            text = f"{data.function} revision {data.revision} after revision {top}"
            report.violations.append(Violation("revisions move on", text, (top_id, envelope.id)))
        if data.revision > top:
            newest[data.function] = (data.revision, envelope.id)


@dataclass
class _Counts:
    """Per function: the replicas it started, in order, and its decisions."""

    starts: list[str] = field(default_factory=list)
    decisions: list[tuple[datetime, int]] = field(default_factory=list)

    def allowed(self, now: datetime) -> int | None:
        if not self.decisions:
            return None
        recent = [d for t, d in self.decisions if t >= now - timedelta(seconds=LAG_S)]
        return max([self.decisions[-1][1], *recent]) + MAX_SURGE


def _ends(events: list[Envelope]) -> dict[str, datetime]:
    """When each replica stopped counting as live: told to stop or drain, reported ended,
    or its node lost (in its generation or a later one), whichever came first."""
    ends: dict[str, datetime] = {}
    placed: dict[str, tuple[str, int]] = {}
    for envelope in events:
        data = envelope.data
        if isinstance(data, StartReplica):
            placed[data.replica_id] = (data.node, data.node_generation)
        elif isinstance(data, StopReplica | DrainReplica | ReplicaStopped | ReplicaFailed):
            ends.setdefault(data.replica_id, envelope.time)
        elif isinstance(data, NodeLost):
            for replica_id, (node, generation) in placed.items():
                if node == data.node and generation <= data.generation:
                    ends.setdefault(replica_id, envelope.time)
    return ends


def _ceiling(decision: ScaleDecision) -> int:
    """The replicas a decision lets live before the surge: shared between revisions, each
    share is rounded up and each revision may surge on its own."""
    others = max(0, len(decision.per_revision) - 1)
    return decision.desired + 2 * others


def _check_surge(report: Report, events: list[Envelope]) -> None:
    """A scheduler's round drains and starts at once: a replica drained within ROUND_S of
    a start no longer counts against it."""
    ends = _ends(events)
    functions: defaultdict[str, _Counts] = defaultdict(_Counts)
    for envelope in events:
        data = envelope.data
        if isinstance(data, ScaleDecision):
            functions[data.function].decisions.append((envelope.time, _ceiling(data)))
        if not isinstance(data, StartReplica):
            continue
        counts = functions[data.function]
        allowed = counts.allowed(envelope.time)
        round_end = envelope.time + timedelta(seconds=ROUND_S)
        live = {r for r in counts.starts if r not in ends or ends[r] > round_end}
        if allowed is not None and data.replica_id not in counts.starts:
            report.checked["within desired and surge"] += 1
            if len(live) >= allowed:
                text = (
                    f"start of {data.replica_id} with {len(live)} replicas of "
                    f"{data.function} live, desired plus surge {allowed}"
                )
                report.violations.append(
                    Violation("within desired and surge", text, (envelope.id,))
                )
        counts.starts.append(data.replica_id)
