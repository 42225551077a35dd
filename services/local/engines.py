"""A Docker Engine of a lab host: a dockerd in the host's network namespace with its own
socket, data and exec roots, no bridge and no firewall rules of its own (the namespace is
the host's whole network, and its replicas run on it)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from services.local.lab_net import LabError
from services.local.pids import detached, live_pid, terminate


@dataclass
class Engine:
    root: Path
    netns: str
    address: str = ""
    """The host's address, where its replicas are reached."""

    @property
    def socket(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def pid_file(self) -> Path:
        return self.root / "dockerd.pid"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.socket, version="auto", timeout=60)

    def answers(self) -> bool:
        probe = subprocess.run(
            ["docker", "-H", self.socket, "info", "--format", "{{.ID}}"],
            capture_output=True,
            timeout=30,
        )
        return probe.returncode == 0

    def start(self, timeout_s: float = 60) -> None:
        """Start it unless it runs, and wait until it answers."""
        if live_pid(self.pid_file) is not None and self.answers():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        with (self.root / "dockerd.log").open("ab") as log:
            started = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/var/run/netns/{self.netns}",
                    "dockerd",
                    "--data-root",
                    str(self.root / "data"),
                    "--exec-root",
                    str(self.root / "exec"),
                    "--pidfile",
                    str(self.pid_file),
                    "-H",
                    self.socket,
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        detached(started)
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if time.monotonic() > deadline:
                tail = (self.root / "dockerd.log").read_text(errors="replace")[-1500:]
                raise LabError(f"the dockerd of {self.netns} did not start: {tail}")
            time.sleep(0.3)

    def load(self, images: dict[str, bytes]) -> None:
        """The images it lacks, from saved tars (there is no registry)."""
        with contextlib.closing(self.client()) as client:
            have = {tag for image in client.images.list() for tag in image.tags}
            for tag, data in images.items():
                if tag not in have:
                    client.images.load(data)

    def stop(self, timeout_s: float = 60) -> None:
        pid = live_pid(self.pid_file)
        if pid is not None:
            terminate(pid, wait_s=timeout_s)

    def unmount(self) -> None:
        """What the engine left mounted under its roots."""
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1].startswith(str(self.root)):
                subprocess.run(["umount", "-l", fields[1]], capture_output=True)
