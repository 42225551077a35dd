"""Where a request goes: the ready replicas of a function, least outstanding first, never
over a replica's concurrency limit, none that was ejected for refusing connections until
its ejection ends (pure; the proxy holds the counts it changes)."""

from __future__ import annotations

from dataclasses import dataclass, field

EJECT_BASE_S = 1.0
"""A replica that refused a connection leaves routing this long; each refusal in a row
doubles it, up to EJECT_MAX_S. The first call after it ends probes the replica (Envoy's
outlier detection does the same)."""
EJECT_MAX_S = 30.0


@dataclass
class Route:
    replica_id: str
    revision: int
    node: str
    endpoint: str
    limit: int
    outstanding: int = 0
    ejected_until: float = float("-inf")
    refusals: int = 0
    """Refused connections in a row."""

    @property
    def has_room(self) -> bool:
        return self.limit == 0 or self.outstanding < self.limit

    def eject(self, now: float) -> float:
        """Out of routing for a while (longer at each refusal in a row); returns until when."""
        self.refusals += 1
        self.ejected_until = now + min(EJECT_BASE_S * 2 ** (self.refusals - 1), EJECT_MAX_S)
        return self.ejected_until

    def answered(self) -> None:
        self.refusals = 0


@dataclass
class RouteTable:
    """The routable replicas of every function; a replica leaves on draining or ending."""

    by_function: dict[str, dict[str, Route]] = field(default_factory=dict)
    _turn: int = 0

    def add(self, function: str, route: Route) -> None:
        self.by_function.setdefault(function, {}).setdefault(route.replica_id, route)

    def remove(self, function: str, replica_id: str) -> Route | None:
        return self.by_function.get(function, {}).pop(replica_id, None)

    def routes(self, function: str) -> list[Route]:
        return list(self.by_function.get(function, {}).values())

    def returns_at(self, function: str, now: float) -> float | None:
        """When the first of the function's ejected replicas comes back, if one is out."""
        out = [r.ejected_until for r in self.routes(function) if r.ejected_until > now]
        return min(out) if out else None

    def pick(
        self,
        function: str,
        revision: int,
        *,
        avoid: frozenset[str] = frozenset(),
        now: float = float("-inf"),
    ) -> Route | None:
        """The replica for the next request, or None if none has room.

        Replicas of `revision` (the current one) are preferred; while none of them is
        ready, the newest revision that has ready replicas serves (no gap in a rollout).
        Ejected replicas are left out until their ejection ends at `now`."""
        candidates = [
            r for r in self.routes(function) if r.replica_id not in avoid and r.ejected_until <= now
        ]
        if not candidates:
            return None
        current = [r for r in candidates if r.revision == revision]
        if not current:
            newest = max(r.revision for r in candidates)
            current = [r for r in candidates if r.revision == newest]
        open_ = [r for r in current if r.has_room]
        if not open_:
            return None
        least = min(r.outstanding for r in open_)
        tied = [r for r in open_ if r.outstanding == least]
        self._turn += 1
        return tied[self._turn % len(tied)]
