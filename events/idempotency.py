"""Handlers see each event at least once; this remembers which ids were applied already."""

from __future__ import annotations

from collections import deque


class SeenIds:
    """The ids of the most recent `capacity` events, forgetting the oldest first. Ids are
    kept as their hashes: a fold of a long history remembers many of them."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._hashes: set[int] = set()
        self._order: deque[int] = deque()

    def __contains__(self, event_id: str) -> bool:
        return hash(event_id) in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, event_id: str) -> bool:
        """Remember an id; False when it was already seen."""
        key = hash(event_id)
        if key in self._hashes:
            return False
        self._hashes.add(key)
        self._order.append(key)
        if len(self._order) > self.capacity:
            self._hashes.discard(self._order.popleft())
        return True
