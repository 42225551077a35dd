"""Which api instance may use which of a replica's concurrency slots (pure).

A replica with a concurrency limit of L has L slots; slot k belongs to the member at
position (h + k) mod n of the api instances' sorted names, h a stable hash of the
replica's id. Every instance computes the same owners from the same membership, a
replica's owners do not change while the membership stays, and each instance of n gets
L // n or L // n + 1 slots of a replica: together they never send a replica more than L
requests at once. An instance with no slot of any replica of a function relays its calls
to one that has (`relay_to`)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property


def _start(replica_id: str, members: int) -> int:
    return zlib.crc32(replica_id.encode()) % members


def slots_owned(replica_id: str, limit: int, members: tuple[str, ...], me: str) -> int:
    """How many of the replica's `limit` slots `me` owns among `members` (sorted)."""
    if me not in members:
        return 0
    n = len(members)
    offset = (members.index(me) - _start(replica_id, n)) % n
    return limit // n + (1 if offset < limit % n else 0)


def slot_holders(replica_id: str, limit: int, members: tuple[str, ...]) -> list[str]:
    """The members that own at least one of the replica's slots."""
    n = len(members)
    if n == 0:
        return []
    first = _start(replica_id, n)
    return [members[(first + k) % n] for k in range(min(limit, n))]


@dataclass(frozen=True)
class Membership:
    """The api instances of one generation of their group, and their addresses."""

    me: str
    urls: dict[str, str] = field(default_factory=dict)
    """Every member's name and the URL its peers relay to."""
    generation: int = 0

    @cached_property
    def members(self) -> tuple[str, ...]:
        """The members' names, sorted (computed once: the request path asks per call)."""
        return tuple(sorted(self.urls))

    def share(self, replica_id: str, limit: int) -> int:
        """This instance's slots of a replica (a limit of 0, unlimited, is everyone's)."""
        return limit if limit == 0 else slots_owned(replica_id, limit, self.members, self.me)

    def relay_to(self, replicas: Iterable[tuple[str, int]], turn: int) -> str | None:
        """The peer to relay a call to, given the serving replicas (id, limit): one that
        holds a slot, taken in turn, when this instance holds none (None: serve here)."""
        holders: list[str] = []
        for replica_id, limit in replicas:
            if limit == 0:
                return None
            for holder in slot_holders(replica_id, limit, self.members):
                if holder == self.me:
                    return None
                if holder not in holders:
                    holders.append(holder)
        return self.urls[holders[turn % len(holders)]] if holders else None
