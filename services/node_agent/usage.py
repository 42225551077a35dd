"""CPU and memory of a container from two Docker stats samples, as `docker stats` computes
them (cli/command/container/stats_helpers.go): CPU is the container's share of the host's
CPU time between the samples times the online CPUs; memory is usage less the page cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CpuSample:
    container_ns: int
    system_ns: int
    online_cpus: int


@dataclass(frozen=True)
class Usage:
    cpu_cores: float
    cpu_fraction_of_limit: float
    memory_bytes: int
    memory_limit_bytes: int


def cpu_sample(stats: dict[str, Any]) -> CpuSample | None:
    """The CPU counters of one stats reply; None when the reply has none (a stopped container)."""
    cpu = stats.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    system = cpu.get("system_cpu_usage")
    if total is None or system is None:
        return None
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    return CpuSample(container_ns=int(total), system_ns=int(system), online_cpus=max(1, online))


def memory_used(stats: dict[str, Any]) -> tuple[int, int]:
    """(usage less cache, limit) as docker stats shows them, for cgroup v1 and v2."""
    memory = stats.get("memory_stats") or {}
    usage = int(memory.get("usage") or 0)
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    if cache < usage:
        usage -= cache
    return usage, int(memory.get("limit") or 0)


def usage_between(
    before: CpuSample, after: CpuSample, *, cpu_limit: float, memory: tuple[int, int]
) -> Usage:
    """Usage over the interval between two samples; `cpu_limit` in cores (0 = no limit)."""
    container_delta = after.container_ns - before.container_ns
    system_delta = after.system_ns - before.system_ns
    cores = 0.0
    if container_delta > 0 and system_delta > 0:
        cores = container_delta / system_delta * after.online_cpus
    limit = cpu_limit if cpu_limit > 0 else float(after.online_cpus)
    return Usage(
        cpu_cores=cores,
        cpu_fraction_of_limit=cores / limit,
        memory_bytes=memory[0],
        memory_limit_bytes=memory[1],
    )
