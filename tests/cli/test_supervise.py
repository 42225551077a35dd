"""The supervisor's back-off between restarts of a service that keeps dying."""

from __future__ import annotations

import pytest

from services.local.supervise import restart_delay


@pytest.mark.parametrize(
    ("previous", "uptime", "expected"),
    [
        (0.0, 0.5, 1.0),  # first death
        (1.0, 0.5, 2.0),  # dies again at once: doubles
        (16.0, 2.0, 30.0),  # capped
        (30.0, 1.0, 30.0),
        (30.0, 61.0, 1.0),  # it had been up a minute: starts over
    ],
)
def test_restart_delay(previous: float, uptime: float, expected: float) -> None:
    assert restart_delay(previous, uptime) == expected
