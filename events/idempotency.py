"""Handlers see each event at least once; this makes applying it happen at most once."""

from __future__ import annotations

from collections import OrderedDict

from events.bus import Handler
from events.envelope import Envelope


class SeenIds:
    """The ids of the most recent `capacity` events, forgetting the oldest first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> bool:
        """Remember an id; False when it was already seen."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def once_per_id(handler: Handler, seen: SeenIds | None = None) -> Handler:
    """Wrap a handler so that a redelivered event (same id) is not applied again."""
    memory = seen or SeenIds()

    async def handle_once(envelope: Envelope) -> None:
        if envelope.id not in memory:
            await handler(envelope)
            memory.add(envelope.id)

    return handle_once
