"""CPU and memory from Docker stats, as `docker stats` computes them."""

from __future__ import annotations

from typing import Any

import pytest

from services.node_agent.usage import CpuSample, cpu_sample, memory_used, usage_between


def stats(
    total: int, system: int, online: int = 2, memory: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": total},
            "system_cpu_usage": system,
            "online_cpus": online,
        },
        "memory_stats": memory or {},
    }


@pytest.mark.parametrize(
    ("container_delta", "system_delta", "online", "limit", "cores", "fraction"),
    [
        (50, 100, 2, 1.0, 1.0, 1.0),  # half the host's CPU time on 2 CPUs = one core
        (25, 100, 2, 0.5, 0.5, 1.0),  # half a core used of a half-core limit
        (10, 100, 4, 2.0, 0.4, 0.2),
        (0, 100, 2, 1.0, 0.0, 0.0),
        (10, 0, 2, 1.0, 0.0, 0.0),  # no system time passed: no usage, no division by zero
        (50, 100, 2, 0.0, 1.0, 0.5),  # no limit: a fraction of all online CPUs
    ],
)
def test_cpu_is_the_share_of_host_time_times_online_cpus(
    container_delta: int,
    system_delta: int,
    online: int,
    limit: float,
    cores: float,
    fraction: float,
) -> None:
    before = CpuSample(container_ns=1000, system_ns=10_000, online_cpus=online)
    after = CpuSample(
        container_ns=1000 + container_delta, system_ns=10_000 + system_delta, online_cpus=online
    )
    usage = usage_between(before, after, cpu_limit=limit, memory=(0, 0))
    assert usage.cpu_cores == pytest.approx(cores)
    assert usage.cpu_fraction_of_limit == pytest.approx(fraction)


def test_a_sample_without_counters_is_none() -> None:
    assert cpu_sample({"cpu_stats": {}}) is None
    assert cpu_sample(stats(5, 10)) == CpuSample(container_ns=5, system_ns=10, online_cpus=2)


def test_online_cpus_fall_back_to_the_per_cpu_list() -> None:
    raw = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 1, "percpu_usage": [1, 2, 3]},
            "system_cpu_usage": 2,
        }
    }
    assert cpu_sample(raw) == CpuSample(container_ns=1, system_ns=2, online_cpus=3)


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        ({"usage": 100, "limit": 1000, "stats": {"total_inactive_file": 30}}, (70, 1000)),  # v1
        ({"usage": 100, "limit": 1000, "stats": {"inactive_file": 40}}, (60, 1000)),  # v2
        ({"usage": 100, "limit": 1000, "stats": {"inactive_file": 400}}, (100, 1000)),
        ({}, (0, 0)),
    ],
)
def test_memory_is_usage_less_the_inactive_page_cache(
    memory: dict[str, Any], expected: tuple[int, int]
) -> None:
    assert memory_used({"memory_stats": memory}) == expected
