"""The port allocator."""

from __future__ import annotations

import pytest

from services.node_agent.ports import PortAllocator, PortsExhausted


def test_ports_come_in_order_and_a_released_one_is_not_reused_at_once() -> None:
    ports = PortAllocator(30000, 30002)
    assert [ports.allocate(), ports.allocate()] == [30000, 30001]
    ports.release(30000)
    assert ports.allocate() == 30002
    assert ports.allocate() == 30000


def test_an_exhausted_range_says_which_range() -> None:
    ports = PortAllocator(30000, 30001)
    ports.allocate()
    ports.allocate()
    with pytest.raises(PortsExhausted, match="30000-30001"):
        ports.allocate()


def test_a_reserved_port_is_skipped() -> None:
    ports = PortAllocator(30000, 30002)
    ports.reserve(30000)
    assert ports.allocate() == 30001
    assert ports.in_use == 2


@pytest.mark.parametrize("first,last", [(0, 10), (10, 5), (65000, 70000)])
def test_a_bad_range_is_refused(first: int, last: int) -> None:
    with pytest.raises(ValueError, match="not within"):
        PortAllocator(first, last)
