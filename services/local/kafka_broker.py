"""A single-node Apache Kafka 4 broker in KRaft mode, run from the Maven Central jars."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.local.paths import REPO_ROOT, kafka_jars_dir
from services.local.pids import live_pid, terminate

LOG4J_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"
STORAGE_TOOL = "kafka.tools.StorageTool"


class BrokerError(RuntimeError):
    """The broker could not be provisioned or started; the message says what to do."""


@dataclass(frozen=True)
class BrokerLayout:
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap_mb: int = 512
    jars_dir: Path = field(default_factory=kafka_jars_dir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"


def server_properties(layout: BrokerLayout) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{layout.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{layout.port},"
            f"CONTROLLER://127.0.0.1:{layout.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{layout.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={layout.data_dir / 'logs'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]
    )


class LocalKafkaBroker:
    """Formats (once), starts, probes and stops one broker process."""

    def __init__(self, layout: BrokerLayout) -> None:
        self.layout = layout
        self._process: subprocess.Popen[bytes] | None = None

    def _java(self, *args: str) -> list[str]:
        jars = self.layout.jars_dir
        if not (jars / ".stamp").exists():
            raise BrokerError(
                f"Kafka jars are missing in {jars}: run ./scripts/start.sh or ./scripts/test.sh, "
                "which resolve them from Maven Central"
            )
        return [
            "java",
            f"-Xmx{self.layout.heap_mb}m",
            f"-Xms{min(self.layout.heap_mb, 256)}m",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{jars}/*",
            *args,
        ]

    def ensure_formatted(self) -> None:
        layout = self.layout
        layout.data_dir.mkdir(parents=True, exist_ok=True)
        layout.properties_file.write_text(server_properties(layout))
        if (layout.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = subprocess.run(
            self._java(STORAGE_TOOL, "random-uuid"), check=True, capture_output=True, text=True
        ).stdout.strip()
        result = subprocess.run(
            self._java(
                STORAGE_TOOL,
                "format",
                "-t",
                cluster_id,
                "-c",
                str(layout.properties_file),
                "--standalone",
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stderr.strip()[-500:]}")

    def pid(self) -> int | None:
        return live_pid(self.layout.pid_file)

    def is_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.layout.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self, *, wait_s: float = 60.0) -> None:
        """Start the broker unless it already runs, and wait until it accepts connections."""
        if self.pid() is not None and self.is_listening():
            return
        if self.is_listening():
            raise BrokerError(
                f"port {self.layout.port} is taken by another process; stop it or choose "
                "another port (SHOAL_KAFKA_PORT)"
            )
        self.ensure_formatted()
        with self.layout.log_file.open("ab") as log:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.layout.properties_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._process = process
        self.layout.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with code {process.returncode} at start; "
                    f"see {self.layout.log_file}"
                )
            if self.is_listening():
                return
            time.sleep(0.2)
        raise BrokerError(f"Kafka did not listen within {wait_s:.0f} s; see {self.layout.log_file}")

    def stop(self, *, kill: bool = False, wait_s: float = 30.0) -> None:
        """Stop the broker (SIGTERM, or SIGKILL when `kill`), waiting until it is gone."""
        pid = self.pid()
        if pid is None:
            return
        if self._process is not None and self._process.pid == pid:
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self._process.wait(wait_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        else:
            terminate(pid, wait_s=wait_s, kill=kill)
        self.layout.pid_file.unlink(missing_ok=True)
