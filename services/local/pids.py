"""Processes the local platform started, found again through pid files."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def live_pid(pid_file: Path) -> int | None:
    """The pid in the file if that process still runs."""
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def terminate(pid: int, *, wait_s: float, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL), then SIGKILL if the process is still there after `wait_s`."""
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the process if it is a child of this one that has ended (else, as a zombie,
    it would look alive until this process ends)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    for process in [p for p in _DETACHED if p.pid == pid and p.poll() is not None]:
        _DETACHED.remove(process)


_DETACHED: list[subprocess.Popen[bytes]] = []


def detached(process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Keep a started daemon's handle for the life of this process (it outlives the object
    that started it; Python would warn that its handle went while it ran)."""
    _DETACHED.append(process)
    return process
