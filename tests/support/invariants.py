"""The log's invariants, checked at the end of an end-to-end scenario."""

from __future__ import annotations

from events.history import HISTORY_TOPICS, ReadCounts, read_all
from events.invariants import Report, check
from events.settings import BusSettings


async def assert_log_holds(bus: BusSettings, *, grace_s: float = 3.0) -> Report:
    """Every rule holds over the whole log (commands younger than `grace_s` aside)."""
    found = check(await read_all(bus, HISTORY_TOPICS, ReadCounts()), grace_s=grace_s)
    assert not found.violations, found.violations
    return found
