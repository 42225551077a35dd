"""How each revision of each function has fared: failures, readiness, and back-off.

Counted from the replica reports alone, which Kafka keeps in order per function, and
keyed by revision (revisions are never reused, even across a function's re-creation), so
the counts do not depend on when the function's own events were read. A replica's
failure counts once, however often it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0


@dataclass(slots=True)
class RevisionRecord:
    failures: int = 0
    """Every failure of a replica of this revision."""
    since_ready: int = 0
    """Failures since a replica of this revision last became ready (the crash loop)."""
    ever_ready: bool = False
    last_failure: str = ""
    last_failure_heard_at: float = 0.0

    def back_off_until(self) -> float:
        """When the next start may happen, on this process's clock: the first failure is
        replaced at once (as the kubelet restarts a container), the next ones after 1 s,
        2 s, 4 s ... up to 60 s."""
        if self.since_ready <= 1:
            return 0.0
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self.since_ready - 2))
        return float(self.last_failure_heard_at + delay)


@dataclass(slots=True)
class FunctionFailures:
    since_ready: int = 0
    """Replicas failed since one of any revision last became ready."""
    last: str = ""


@dataclass
class FailuresProjection:
    revisions: dict[tuple[str, int], RevisionRecord] = field(default_factory=dict)
    functions: dict[str, FunctionFailures] = field(default_factory=dict)

    def shift(self, offset: float) -> None:
        """Move every time this projection heard something by `offset` seconds."""
        for record in self.revisions.values():
            if record.failures:
                record.last_failure_heard_at += offset

    def of(self, function: str, revision: int) -> RevisionRecord:
        found = self.revisions.get((function, revision))
        return found if found is not None else RevisionRecord()

    def of_function(self, function: str) -> FunctionFailures:
        found = self.functions.get(function)
        return found if found is not None else FunctionFailures()

    def failed(
        self, function: str, revision: int, summary: str, now: float, *, counts: bool = True
    ) -> None:
        """A replica failed; one the platform caused (`counts` False) is told, not counted."""
        record = self.revisions.setdefault((function, revision), RevisionRecord())
        whole = self.functions.setdefault(function, FunctionFailures())
        record.last_failure, whole.last = summary, summary
        if counts:
            record.failures += 1
            record.since_ready += 1
            record.last_failure_heard_at = now
            whole.since_ready += 1

    def ready(self, function: str, revision: int) -> None:
        record = self.revisions.setdefault((function, revision), RevisionRecord())
        record.ever_ready, record.since_ready = True, 0
        self.functions.setdefault(function, FunctionFailures()).since_ready = 0
