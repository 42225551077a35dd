"""Connections open to a replica, as its network namespace's TCP tables say: how a drain
knows the replica has no request in flight, and a scale-down which replicas are idle.

A replica's process is seen through /proc/PID/net/tcp{,6}, the table of the namespace it
runs in (its own when isolated, the host's on the host network). Each table is read at
most once per `max_age_s`, however many replicas share it."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.labels import LABEL_PORT

ESTABLISHED = "01"


def established_by_port(*tables: str) -> Counter[int]:
    """Established connections per local port, from /proc/net/tcp-style tables."""
    found: Counter[int] = Counter()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == ESTABLISHED:
                _, _, port = fields[1].rpartition(":")
                found[int(port, 16)] += 1
    return found


@dataclass(frozen=True)
class Listener:
    """Where a replica's process is, and the port it listens on in its own namespace."""

    pid: int
    port: int


def listener_of(attrs: dict[str, Any]) -> Listener | None:
    """From a container's inspection: its process, and the port it listens on inside (the
    one published when isolated, the one it was given on the host network)."""
    pid = (attrs.get("State") or {}).get("Pid") or 0
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    try:
        port = int(next(iter(bindings)).split("/")[0]) if bindings else int(labels[LABEL_PORT])
    except (KeyError, ValueError):
        return None
    return Listener(pid, port) if pid else None


@dataclass
class ConnectionTables:
    clock: Callable[[], float]
    proc: Path = Path("/proc")
    max_age_s: float = 0.1
    _read: dict[int, tuple[float, Counter[int]]] = field(default_factory=dict)
    """Namespace inode -> (when read, established connections per port)."""

    def open_to(self, listener: Listener) -> int | None:
        """Connections established to the listener's port now; None when its process or
        tables cannot be read (it ended, or /proc is not this host's)."""
        base = self.proc / str(listener.pid)
        try:
            namespace = os.stat(base / "ns" / "net").st_ino
            now = self.clock()
            cached = self._read.get(namespace)
            if cached is None or now - cached[0] > self.max_age_s:
                tables = [(base / "net" / name).read_text() for name in ("tcp", "tcp6")]
                cached = self._read[namespace] = (now, established_by_port(*tables))
                self._forget_old(now)
        except (OSError, ValueError):
            return None
        return cached[1][listener.port]

    def _forget_old(self, now: float) -> None:
        old = [ns for ns, (at, _) in self._read.items() if now - at > 10 * self.max_age_s]
        for namespace in old:
            del self._read[namespace]
