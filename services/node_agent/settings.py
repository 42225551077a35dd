"""The node-agent's settings, from SHOAL_NODE_* variables."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.common.sealing import SealingKey, key_from_env
from services.common.settings import CommonSettings, SettingsError, env_float, env_int
from services.node_agent.sandbox import REPLICA_NETWORK, Sandbox


def _host_memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    node_id: str
    runtime: Literal["docker", "sim"]
    address: str
    cpus: float
    cpu_overcommit: float
    """How many times its CPUs the node lets its replicas request (never its memory)."""
    memory_mb: int
    max_replicas: int
    port_first: int
    port_last: int
    network: Literal["host", "bridge"]
    heartbeat_s: float
    stats_s: float
    stop_timeout_s: float
    min_drain_s: float
    """The least a drain lasts (the time routers take to hear of it) before it ends for
    want of connections; the scheduler's drain time is the most."""
    probe_interval_s: float
    sim_ready_delay_s: float
    sim_cpu_fraction: float
    hollow_nodes: int
    sandbox: Sandbox
    secrets_dir: Path | None
    """Under which folder (on a tmpfs) each node writes its replicas' secret files."""
    sealing_key: SealingKey | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        runtime = environ.get("SHOAL_NODE_RUNTIME", "docker")
        if runtime not in ("docker", "sim"):
            raise SettingsError(f"SHOAL_NODE_RUNTIME={runtime!r} must be docker or sim")
        network = environ.get("SHOAL_NODE_NETWORK", "bridge")
        if network not in ("host", "bridge"):
            raise SettingsError(f"SHOAL_NODE_NETWORK={network!r} must be host or bridge")
        network_name = environ.get("SHOAL_NODE_REPLICA_NETWORK", REPLICA_NETWORK)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", network_name):
            raise SettingsError(
                f"SHOAL_NODE_REPLICA_NETWORK={network_name!r} is not a Docker network name"
            )
        first = env_int(environ, "SHOAL_NODE_PORT_FIRST", 30000)
        last = env_int(environ, "SHOAL_NODE_PORT_LAST", 32767)
        if not 1 <= first <= last <= 65535:
            raise SettingsError(f"SHOAL_NODE_PORT_FIRST/LAST {first}-{last} is not a port range")
        return cls(
            common=CommonSettings.from_env(environ, service="node", default_port=9104),
            node_id=environ.get("SHOAL_NODE_ID", socket.gethostname()),
            runtime=runtime,  # type: ignore[arg-type]
            address=environ.get("SHOAL_NODE_ADDRESS", "127.0.0.1"),
            cpus=env_float(environ, "SHOAL_NODE_CPUS", float(os.cpu_count() or 1)),
            cpu_overcommit=env_float(environ, "SHOAL_NODE_CPU_OVERCOMMIT", 1.0, minimum=1.0),
            memory_mb=env_int(environ, "SHOAL_NODE_MEMORY_MB", _host_memory_mb()),
            max_replicas=env_int(environ, "SHOAL_NODE_MAX_REPLICAS", 500),
            port_first=first,
            port_last=last,
            network=network,  # type: ignore[arg-type]
            heartbeat_s=env_float(environ, "SHOAL_NODE_HEARTBEAT_S", 1.0, minimum=0.001),
            stats_s=env_float(environ, "SHOAL_NODE_STATS_S", 5.0, minimum=0.001),
            stop_timeout_s=env_float(environ, "SHOAL_NODE_STOP_TIMEOUT_S", 10.0),
            min_drain_s=env_float(environ, "SHOAL_NODE_MIN_DRAIN_S", 0.5),
            probe_interval_s=env_float(environ, "SHOAL_NODE_PROBE_INTERVAL_S", 0.01, minimum=0.001),
            sim_ready_delay_s=env_float(environ, "SHOAL_NODE_SIM_READY_DELAY_S", 0.2),
            sim_cpu_fraction=env_float(environ, "SHOAL_NODE_SIM_CPU_FRACTION", 0.0),
            hollow_nodes=env_int(environ, "SHOAL_NODE_HOLLOW_NODES", 1),
            sandbox=Sandbox(
                pids_limit=env_int(environ, "SHOAL_NODE_PIDS_LIMIT", 256, minimum=16),
                log_max_bytes=env_int(environ, "SHOAL_NODE_LOG_MAX_BYTES", 1 << 20, minimum=1024),
                log_files=env_int(environ, "SHOAL_NODE_LOG_FILES", 2, minimum=1),
                network_name=network_name,
                startup_cpu=env_float(environ, "SHOAL_NODE_STARTUP_CPU", 0.5, minimum=0.0),
            ),
            secrets_dir=Path(environ["SHOAL_NODE_SECRETS_DIR"])
            if environ.get("SHOAL_NODE_SECRETS_DIR")
            else None,
            sealing_key=key_from_env(environ),
        )
