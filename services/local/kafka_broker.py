"""An Apache Kafka 4 broker in KRaft mode, run from the Maven Central jars: the single node
`shoal up` starts, or one node of the lab's cluster (`services.local.lab`), in a network
namespace of its own, with replication and a static quorum of controllers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from events.acls import apply_grants, digest, grants
from events.credentials import Credentials
from events.settings import BusSettings
from services.local.credentials import (
    ADMIN,
    CONTROLLER,
    SCRAM_PRINCIPALS,
    credentials_dir,
    credentials_file,
    ensure_credentials,
)
from services.local.paths import PRIVATE_UMASK, REPO_ROOT, kafka_jars_dir, private_dir, private_log
from services.local.pids import detached, live_pid, terminate

LOG4J_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"
STORAGE_TOOL = "kafka.tools.StorageTool"
FORMAT_MARK = ".shoal-format-2"
"""In the data folder from the moment its storage is formatted with the principals' SCRAM
users for topics named kind first: storage without it was made by an older Shoal (with no
users, or with the namespace first in topic names, which the ACLs do not cover)."""
ACLS_MARK = ".shoal-acls"
"""The fingerprint of the grants the broker was last given (`events.acls.digest`)."""


class BrokerError(RuntimeError):
    """The broker could not be provisioned or started; the message says what to do."""


@dataclass(frozen=True)
class BrokerLayout:
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap_mb: int = 512
    jars_dir: Path = field(default_factory=kafka_jars_dir)
    host: str = "127.0.0.1"
    node_id: int = 1
    voters: tuple[str, ...] = ()
    """A cluster's controllers, `id@host:port` (none: this node alone)."""
    netns: str | None = None
    """The network namespace it runs in (None: this one)."""
    shared_credentials: Path | None = None
    """A cluster's credentials folder, the same for all its nodes."""
    cluster_id: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def replication(self) -> int:
        """How many copies of each partition: 3 in a cluster of three or more nodes."""
        return min(3, len(self.voters)) if self.voters else 1

    @property
    def credentials_dir(self) -> Path:
        return self.shared_credentials or credentials_dir(self.data_dir)

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"


def server_properties(layout: BrokerLayout, principals: dict[str, Credentials]) -> str:
    """SASL on both listeners: SCRAM-SHA-256 for clients (and the broker itself), PLAIN
    for the controller; plaintext is not offered."""
    admin, controller = principals[ADMIN], principals[CONTROLLER]
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    host, copies = layout.host, layout.replication
    quorum = (
        f"controller.quorum.voters={','.join(layout.voters)}"
        if layout.voters
        else f"controller.quorum.bootstrap.servers={host}:{layout.controller_port}"
    )
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={layout.node_id}",
            quorum,
            f"listeners=CLIENT://{host}:{layout.port},CONTROLLER://{host}:{layout.controller_port}",
            f"advertised.listeners=CLIENT://{host}:{layout.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=CLIENT",
            "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256",
            f"listener.name.client.scram-sha-256.sasl.jaas.config={scram} required "
            f'username="{admin.username}" password="{admin.password}";',
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain} required "
            f'username="{controller.username}" password="{controller.password}" '
            f'user_{controller.username}="{controller.password}";',
            f"log.dirs={layout.data_dir / 'logs'}",
            "num.partitions=1",
            f"default.replication.factor={copies}",
            f"min.insync.replicas={2 if copies >= 3 else 1}",
            "unclean.leader.election.enable=false",
            # A dead broker of a cluster is fenced, and its partitions led elsewhere, within
            # about 3 s (Kafka's default session is 9 s).
            "broker.heartbeat.interval.ms=500",
            "broker.session.timeout.ms=3000",
            f"offsets.topic.replication.factor={copies}",
            "offsets.topic.num.partitions=10",
            f"transaction.state.log.replication.factor={copies}",
            f"transaction.state.log.min.isr={2 if copies >= 3 else 1}",
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000",
            "auto.create.topics.enable=false",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{admin.username};User:{controller.username}",
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
        inside = ["nsenter", f"--net=/var/run/netns/{ns}"] if (ns := self.layout.netns) else []
        return [
            *inside,
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
        """Write the config (0600: it holds the broker's own secrets) and format the
        storage once, with a SCRAM user for every principal."""
        layout = self.layout
        private_dir(layout.data_dir)
        principals = ensure_credentials(layout.credentials_dir)
        layout.properties_file.unlink(missing_ok=True)
        fd = os.open(layout.properties_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(server_properties(layout, principals))
        logs, mark = layout.data_dir / "logs", layout.data_dir / FORMAT_MARK
        if (logs / "meta.properties").exists():
            if not mark.exists():
                raise BrokerError(
                    f"the Kafka data in {logs} was made by an older Shoal (without "
                    "authentication, or with other topic names); remove "
                    f"{layout.data_dir} (its events are lost) and start again"
                )
            return
        mark.touch()  # before: a format cut short leaves data made with the users, or none
        cluster_id = (
            self.layout.cluster_id
            or subprocess.run(
                self._java(STORAGE_TOOL, "random-uuid"), check=True, capture_output=True, text=True
            ).stdout.strip()
        )
        users = [
            arg
            for name in SCRAM_PRINCIPALS
            for arg in (
                "--add-scram",
                f'"SCRAM-SHA-256=[name={name},password={principals[name].password}]"',
            )
        ]
        command = [STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(layout.properties_file)]
        # The passwords go in a java @argfile (0600, in the 0700 credentials folder), not on
        # the command line, where `ps` would show them.
        argfile = layout.credentials_dir / f"format-{layout.node_id}.args"
        argfile.unlink(missing_ok=True)
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            alone = [] if self.layout.voters else ["--standalone"]
            out.write("\n".join([*command, *alone, *users]) + "\n")
        try:
            result = subprocess.run(
                self._java(f"@{argfile}"), capture_output=True, text=True, umask=PRIVATE_UMASK
            )
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stderr.strip()[-500:]}")

    def credentials(self, principal: str) -> Path:
        """The file of a principal's credentials (made at the first start)."""
        return credentials_file(self.layout.credentials_dir, principal)

    def pid(self) -> int | None:
        return live_pid(self.layout.pid_file)

    def is_listening(self) -> bool:
        try:
            with socket.create_connection((self.layout.host, self.layout.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self, *, wait_s: float = 60.0) -> None:
        """Start the broker unless it already runs, and wait until it accepts connections."""
        if self.pid() is not None and self.is_listening():
            self.ensure_acls()
            return
        if self.is_listening():
            raise BrokerError(
                f"port {self.layout.port} is taken by another process; stop it or choose "
                "another port (SHOAL_KAFKA_PORT)"
            )
        self.launch()
        self.wait_listening(wait_s)
        self.ensure_acls()

    def launch(self) -> None:
        """Start the broker's process (formatting its storage first, once)."""
        self.ensure_formatted()
        with os.fdopen(private_log(self.layout.log_file), "ab") as log:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.layout.properties_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        self._process = detached(process)
        self.layout.pid_file.write_text(str(process.pid))

    def wait_listening(self, wait_s: float) -> None:
        """Until the broker accepts connections (a cluster's, once its quorum stands)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with code {self._process.returncode} at start; "
                    f"see {self.layout.log_file}"
                )
            if self.is_listening():
                return
            time.sleep(0.2)
        raise BrokerError(f"Kafka did not listen within {wait_s:.0f} s; see {self.layout.log_file}")

    def ensure_acls(self) -> None:
        """Give the roles exactly their declared grants, unless the broker has them."""
        wanted = grants()
        mark = self.layout.data_dir / ACLS_MARK
        if mark.exists() and mark.read_text() == digest(wanted):
            return
        settings = BusSettings(bootstrap_servers=self.layout.bootstrap, connect_timeout_s=30.0)
        admin = settings.signed_in(self.credentials(ADMIN))
        try:  # in a thread of its own: a caller may be inside an event loop
            with ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, apply_grants(admin, wanted)).result()
        except Exception as exc:
            raise BrokerError(f"Kafka did not take its ACLs: {exc!r}") from exc
        mark.write_text(digest(wanted))

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
