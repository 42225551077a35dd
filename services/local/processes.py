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
from services.local.pids import detached, live_pid, terminate

SERVICE_ORDER = ("node_agent", "scheduler", "autoscaler", "healer", "api")
ELECTED_MODULES = ("scheduler", "autoscaler", "healer")
"""The deciders: `shoal up` runs several instances of each; one leads at a time."""
SCALED_MODULES = ("api", *ELECTED_MODULES)
"""What `shoal up --instances N` runs N of (a node-agent is one per node)."""
MOST_INSTANCES = 9
PORTS = {"api": ("API", 8080), "scheduler": ("SCHEDULER", 9102)}
PORTS |= {"autoscaler": ("AUTOSCALER", 9101), "healer": ("HEALER", 9103)}
PORTS |= {"node_agent": ("NODE", 9104)}
"""Each service's settings prefix and default HTTP port."""
DASHBOARD_PORT = 8081


@dataclass(frozen=True)
class ServiceProcess:
    module: str
    index: int = 1
    """Which instance: the second and later of a decider run beside the first."""
    host: str = ""
    """The network namespace of the lab host it runs on ('': this machine's)."""
    home: Path | None = None
    """Where its pid file and log go (None: the state folder)."""

    @property
    def name(self) -> str:
        base = self.module if self.index == 1 else f"{self.module}-{self.index}"
        return f"{base}@{self.host}" if self.host else base

    def http_port(self, environ: dict[str, str]) -> int:
        """Its HTTP port: the service's (SHOAL_<SERVICE>_HTTP_PORT or the default), 100 up
        for each instance after the first."""
        prefix, default = PORTS[self.module]
        base = int(environ.get(f"SHOAL_{prefix}_HTTP_PORT") or default)
        return base + 100 * (self.index - 1)

    def own_env(self, environ: dict[str, str]) -> dict[str, str]:
        """What this instance's environment sets apart from its siblings' (an api's
        dashboard port too, 100 up for each instance after the first)."""
        prefix, _ = PORTS[self.module]
        own = {
            f"SHOAL_{prefix}_HTTP_PORT": str(self.http_port(environ)),
            f"SHOAL_{prefix}_INSTANCE": f"{self.name}-{os.uname().nodename}",
        }
        if self.module == "api":
            dashboard = int(environ.get("SHOAL_API_DASHBOARD_PORT") or DASHBOARD_PORT)
            own["SHOAL_API_DASHBOARD_PORT"] = str(dashboard + 100 * (self.index - 1))
        return own

    @property
    def pid_file(self) -> Path:
        return (self.home or state_dir()) / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return (self.home or state_dir()) / "logs" / f"{self.name}.log"

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
            inside = ["nsenter", f"--net=/var/run/netns/{self.host}"] if self.host else []
            process = subprocess.Popen(
                [*inside, sys.executable, "-m", "services.local.supervise", self.module, self.name],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        self.pid_file.write_text(str(detached(process).pid))
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


def built_services(instances: int = 1) -> list[ServiceProcess]:
    """The services that exist in this tree (each has a __main__), in start order, with
    `instances` of the api and of each decider."""
    return [
        ServiceProcess(module, index)
        for module in SERVICE_ORDER
        if (REPO_ROOT / "services" / module / "__main__.py").exists()
        for index in range(1, (instances if module in SCALED_MODULES else 1) + 1)
    ]


def known_services() -> list[ServiceProcess]:
    """Every service of this tree, with every further decider instance that has a pid file
    (what `shoal status` and `shoal down` look at, whatever `--instances` was)."""
    return [
        service
        for service in built_services(MOST_INSTANCES)
        if service.index == 1 or service.pid_file.exists()
    ]
