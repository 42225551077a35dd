"""Where a request goes: the ready replicas of a function, least outstanding first, never
over this api instance's share of a replica's concurrency limit (`services.api.shares`),
none that was ejected for refusing connections until its ejection ends (pure; the proxy
holds the counts it changes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.api.shares import Membership
from services.api.traffic import Target

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
    share: int = -1
    """This instance's slots of the replica's limit (all of them unless told)."""

    def __post_init__(self) -> None:
        if self.share < 0:
            self.share = self.limit

    @property
    def has_room(self) -> bool:
        return self.limit == 0 or self.outstanding < self.share

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
    membership: Membership | None = None
    """The api instances that share the replicas' limits (None: this one alone)."""
    shares_until: float = float("inf")
    """Until when the membership is sure to hold; past it, no limited slot is used."""
    _turn: int = 0
    _relays: int = 0

    def add(self, function: str, route: Route) -> None:
        if self.membership is not None:
            route.share = self.membership.share(route.replica_id, route.limit)
        self.by_function.setdefault(function, {}).setdefault(route.replica_id, route)

    def reshare(self, membership: Membership, until: float) -> None:
        """Take a new membership (valid until `until`): every replica's share again."""
        self.membership, self.shares_until = membership, until
        for routes in self.by_function.values():
            for route in routes.values():
                route.share = membership.share(route.replica_id, route.limit)

    def remove(self, function: str, replica_id: str) -> Route | None:
        return self.by_function.get(function, {}).pop(replica_id, None)

    def limited_outstanding(self) -> int:
        """Calls this instance has in flight on replicas with a concurrency limit."""
        return sum(
            r.outstanding
            for routes in self.by_function.values()
            for r in routes.values()
            if r.limit
        )

    def routes(self, function: str) -> list[Route]:
        return list(self.by_function.get(function, {}).values())

    def returns_at(self, function: str, now: float) -> float | None:
        """When the first of the function's ejected replicas comes back, if one is out."""
        out = [r.ejected_until for r in self.routes(function) if r.ejected_until > now]
        return min(out) if out else None

    def revisions(self, function: str) -> set[int]:
        """The revisions that have replicas in routing."""
        return {r.revision for r in self.routes(function)}

    def serving(
        self, function: str, target: Target, avoid: frozenset[str], now: float
    ) -> list[Route]:
        """The replicas that serve the target now: those of its revision or, unless it is
        strict, while none of them is ready, of the newest revision that has ready
        replicas (no gap in a rollout); none that is ejected at `now` or in `avoid`."""
        candidates = [
            r for r in self.routes(function) if r.replica_id not in avoid and r.ejected_until <= now
        ]
        current = [r for r in candidates if r.revision == target.revision]
        if current or target.strict or not candidates:
            return current
        newest = max(r.revision for r in candidates)
        return [r for r in candidates if r.revision == newest]

    def pick(
        self,
        function: str,
        target: Target,
        *,
        avoid: frozenset[str] = frozenset(),
        now: float = float("-inf"),
    ) -> Route | None:
        """The replica for the next request, or None if none has room (a limited one
        has none past `shares_until`)."""
        sure = now <= self.shares_until
        open_ = [
            r
            for r in self.serving(function, target, avoid, now)
            if r.has_room and (sure or r.limit == 0)
        ]
        if not open_:
            return None
        least = min(r.outstanding for r in open_)
        tied = [r for r in open_ if r.outstanding == least]
        self._turn += 1
        return tied[self._turn % len(tied)]

    def relay_to(self, function: str, target: Target, now: float) -> str | None:
        """The peer api to relay a call to: one holding a slot of a serving replica, when
        this instance holds none (None: serve or wait here)."""
        serving = self.serving(function, target, frozenset(), now)
        if self.membership is None or not serving:
            return None
        peer = self.membership.relay_to(((r.replica_id, r.limit) for r in serving), self._relays)
        self._relays += peer is not None
        return peer
