"""Which revision a call goes to (pure): the one a tag names, or the next by the
function's split (smooth weighted round robin, as nginx shares between upstreams: over
every 100 calls each revision gets exactly its percent), among the revisions that have a
replica to take it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from events.projections.traffic import Traffic

TAG_HEADER = "Shoal-Tag"
"""A call may name its revision's tag with this header instead of `/fn/NAME@TAG/`."""
REVISION_HEADER = "Shoal-Revision"
"""Every answer says which revision gave it."""


class UnknownTag(Exception):
    """The call names a tag the function does not have."""


@dataclass(frozen=True)
class Target:
    """Where a call goes: `revision` only when `strict`, else `revision` or, while it has
    no ready replica, the newest that has; `latest`: whichever revision is the latest when
    a replica is picked (`revision` is the latest when the call came)."""

    revision: int
    strict: bool
    latest: bool = False


LATEST = Target(0, strict=False, latest=True)
"""The function's latest revision, whichever it is when a replica is picked."""


def split_name(segment: str) -> tuple[str, str]:
    """`NAME@TAG` -> (NAME, TAG); a plain name has no tag."""
    name, _, tag = segment.partition("@")
    return name, tag


@dataclass
class Chooser:
    """The weighted round robin's running weights, per function."""

    _current: dict[str, dict[int, int]] = field(default_factory=dict)

    def target(self, function: str, traffic: Traffic, tag: str, routed: Collection[int]) -> Target:
        """The call's target; `routed` holds the revisions that have replicas in routing."""
        if tag:
            revision = traffic.tags.get(tag)
            if revision is None:
                raise UnknownTag(tag)
            return Target(revision, strict=True)
        shares = traffic.shares()
        if len(shares) == 1 and traffic.revision in shares:
            return Target(traffic.revision, strict=False, latest=True)
        open_ = {r: p for r, p in shares.items() if r in routed}
        if not open_:
            return Target(traffic.primary(), strict=False)
        return Target(self._next(function, open_), strict=True)

    def _next(self, function: str, weights: dict[int, int]) -> int:
        current = self._current.get(function)
        if current is None or current.keys() != weights.keys():
            current = self._current[function] = dict.fromkeys(weights, 0)
        for revision, weight in weights.items():
            current[revision] += weight
        chosen = max(current, key=lambda r: (current[r], -r))
        current[chosen] -= sum(weights.values())
        return chosen

    def forget(self, function: str) -> None:
        self._current.pop(function, None)
