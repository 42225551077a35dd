"""The local platform's service processes: each runs detached under its supervisor
(started again when it dies), tracked by the supervisor's pid file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from services.local.paths import PRIVATE_UMASK, REPO_ROOT, private_dir, private_log, state_dir
from services.local.pids import live_pid, terminate

SERVICE_ORDER = ("node_agent", "scheduler", "autoscaler", "healer", "api")


@dataclass(frozen=True)
class ServiceProcess:
    name: str

    @property
    def pid_file(self) -> Path:
        return state_dir() / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return state_dir() / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        return live_pid(self.pid_file)

    def start(self, env: dict[str, str]) -> int:
        """Start the service under its supervisor unless it runs; returns the supervisor's
        pid."""
        running = self.pid()
        if running is not None:
            return running
        private_dir(self.pid_file.parent)
        with os.fdopen(private_log(self.log_file), "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.local.supervise", self.name],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def stop(self, wait_s: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        terminate(pid, wait_s=wait_s)
        # The supervisor leads its own process group: nothing of it may outlive a stop.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


def built_services() -> list[ServiceProcess]:
    """The services that exist in this tree (each has a __main__), in start order."""
    return [
        ServiceProcess(name)
        for name in SERVICE_ORDER
        if (REPO_ROOT / "services" / name / "__main__.py").exists()
    ]
