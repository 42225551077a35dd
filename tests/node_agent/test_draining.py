"""When a drain ends (pure), and the connections a replica has open as its namespace's TCP
tables say (parsed from /proc-style text, read once per namespace and age)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from services.common.clock import SYSTEM_CLOCK
from services.common.labels import LABEL_PORT
from services.node_agent.connections import (
    ConnectionTables,
    Listener,
    established_by_port,
    listener_of,
)
from services.node_agent.leaving import drain_over, is_busy, wait_drained
from tests.support.clock import FakeClock

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def row(local: str, remote: str, state: str) -> str:
    return f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000     0\n"


TCP = HEADER + "".join(
    [
        row("0100007F:1F90", "00000000:0000", "0A"),  # listening on 8080: not a connection
        row("0100007F:1F90", "0100007F:C350", "01"),  # established to 8080
        row("0100007F:1F90", "0100007F:C351", "06"),  # in TIME_WAIT: over
        row("0100007F:C350", "0100007F:1F90", "01"),  # the client's end, port 50000
    ]
)
TCP6 = HEADER + row(
    "00000000000000000000000001000000:1F90", "00000000000000000000000001000000:D000", "01"
)


def test_established_connections_are_counted_by_local_port() -> None:
    assert established_by_port(TCP, TCP6) == {8080: 2, 50000: 1}
    assert established_by_port("", "garbage\nnot a row") == {}


def test_a_listener_is_the_published_port_inside_or_the_given_one_on_the_host() -> None:
    bridged = {"State": {"Pid": 42}, "HostConfig": {"PortBindings": {"8080/tcp": [{}]}}}
    assert listener_of(bridged) == Listener(42, 8080)
    hosted = {"State": {"Pid": 7}, "HostConfig": {}, "Config": {"Labels": {LABEL_PORT: "31000"}}}
    assert listener_of(hosted) == Listener(7, 31000)
    assert listener_of({"State": {"Pid": 0}, "Config": {"Labels": {LABEL_PORT: "1"}}}) is None
    assert listener_of({"State": {"Pid": 3}}) is None


def fake_proc(root: Path, pid: int, namespace: str, tcp: str) -> None:
    base = root / str(pid)
    (base / "net").mkdir(parents=True)
    (base / "ns").mkdir()
    (base / "net" / "tcp").write_text(tcp)
    (base / "net" / "tcp6").write_text(HEADER)
    shared = root / f"ns-{namespace}"
    shared.touch()
    (base / "ns" / "net").symlink_to(shared)


def test_tables_are_read_once_per_namespace_and_age(tmp_path: Path) -> None:
    clock = FakeClock()
    fake_proc(tmp_path, 1, "host", TCP)
    fake_proc(tmp_path, 2, "host", TCP)
    tables = ConnectionTables(clock.now, proc=tmp_path, max_age_s=0.1)
    assert tables.open_to(Listener(1, 8080)) == 1
    (tmp_path / "1" / "net" / "tcp").write_text(HEADER)
    (tmp_path / "2" / "net" / "tcp").write_text(HEADER)
    assert tables.open_to(Listener(2, 8080)) == 1, "the same namespace, read 0 s ago"
    clock.advance(0.2)
    assert tables.open_to(Listener(2, 8080)) == 0
    assert tables.open_to(Listener(99, 8080)) is None, "a process that ended"


def test_a_drain_ends_when_quiet_after_its_least_time_or_at_its_most() -> None:
    over = [
        drain_over(0.2, drain_s=2, min_s=0.5, quiet_looks=5),
        drain_over(0.6, drain_s=2, min_s=0.5, quiet_looks=1),
        drain_over(0.6, drain_s=2, min_s=0.5, quiet_looks=2),
        drain_over(2.0, drain_s=2, min_s=0.5, quiet_looks=0),
    ]
    assert over == [False, False, True, True]
    assert [is_busy(None, 0), is_busy(0, 0.0005), is_busy(1, 0), is_busy(None, 0.01)] == [
        False,
        False,
        True,
        True,
    ]


class Connections:
    def __init__(self, answer: int | None, delay_s: float = 0.0) -> None:
        self.answer, self.delay_s = answer, delay_s

    async def connections(self, replica_id: str) -> int | None:
        await asyncio.sleep(self.delay_s)
        return self.answer


@pytest.mark.parametrize(
    ("answer", "lasts"), [(0, (0.3, 0.95)), (1, (1.0, 3.0)), (None, (1.0, 3.0))]
)
async def test_a_drain_waits_for_no_connection_or_its_whole_time(
    answer: int | None, lasts: tuple[float, float]
) -> None:
    began = time.monotonic()
    await wait_drained(
        Connections(answer),  # type: ignore[arg-type]
        "r1",
        drain_s=1.0,
        min_s=0.3,
        clock=SYSTEM_CLOCK,
    )
    took = time.monotonic() - began
    assert lasts[0] <= took < lasts[1], f"the drain lasted {took:.2f} s"


async def test_a_look_slow_to_answer_does_not_lengthen_the_drain() -> None:
    began = time.monotonic()
    slow = Connections(0, delay_s=10)
    await wait_drained(slow, "r1", drain_s=1.0, min_s=0.3, clock=SYSTEM_CLOCK)  # type: ignore[arg-type]
    took = time.monotonic() - began
    assert 1.0 <= took < 3.0, f"the drain lasted {took:.2f} s"
