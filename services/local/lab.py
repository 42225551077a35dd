"""`shoal lab`: a cluster on one machine. Each host is a network namespace with its own
address, its own Docker Engine (own socket and data root, the test images loaded into
it) and its own node-agent; the api and the first instance of each decider run on host
1, the second instances on host 2. Kafka is a cluster of B brokers (KRaft, each broker
its own controller and in its own namespace; replication factor 3, min.insync.replicas
2 and no unclean leader election when B >= 3), with the authenticated bus and ACLs of
`shoal up`. Everything addresses the others by their lab addresses (`lab_net`)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.bus import ensure_topics
from events.settings import BusSettings
from services.common.sealing import make_key
from services.local import lab_net
from services.local.credentials import ADMIN, ensure_credentials, role_of
from services.local.engines import Engine
from services.local.images import ensure_test_images
from services.local.kafka_broker import BrokerLayout, LocalKafkaBroker
from services.local.lab_net import LabError, LabNode, LabPlan
from services.local.paths import private_dir, state_dir, token_file
from services.local.processes import PORTS, ServiceProcess

API_TOKEN_FILE = "api-token"
DECIDERS = ("scheduler", "autoscaler", "healer")


def lab_home() -> Path:
    return state_dir() / "lab"


@dataclass
class Lab:
    home: Path
    plan: LabPlan

    @classmethod
    def saved(cls, home: Path | None = None) -> Lab:
        """The lab `shoal lab up` made (LabError when there is none)."""
        home = home or lab_home()
        try:
            shape = json.loads((home / "lab.json").read_text())
        except (OSError, ValueError):
            raise LabError("no lab is up here: run `shoal lab up` first") from None
        return cls(home, LabPlan(**shape))

    def save(self) -> None:
        private_dir(self.home)
        shape = dataclasses.asdict(self.plan)
        (self.home / "lab.json").write_text(json.dumps(shape))

    @property
    def credentials(self) -> Path:
        return self.home / "credentials"

    def broker(self, index: int) -> LocalKafkaBroker:
        node = self.plan.broker(index)
        return LocalKafkaBroker(
            BrokerLayout(
                data_dir=self.home / node.name,
                heap_mb=384,
                host=node.address,
                node_id=index,
                voters=self.plan.voters,
                netns=node.name,
                shared_credentials=self.credentials,
                cluster_id=self.cluster_id(),
            )
        )

    def cluster_id(self) -> str:
        """The Kafka cluster's id, made once (a base64 of 16 bytes, as Kafka's)."""
        path = self.home / "cluster-id"
        if not path.exists():
            path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return path.read_text().strip()

    def engine(self, index: int) -> Engine:
        node = self.plan.host(index)
        return Engine(root=self.home / node.name / "docker", netns=node.name, address=node.address)

    def api_token(self) -> str:
        return token_file(self.home / API_TOKEN_FILE)

    def services(self, index: int) -> list[ServiceProcess]:
        """What runs on host `index`: its node-agent; on host 1 the api and the deciders,
        on host 2 second instances of the deciders."""
        host = self.plan.host(index).name
        found = [ServiceProcess("node_agent", host=host, home=self.home)]
        if index == 1:
            found += [ServiceProcess(m, host=host, home=self.home) for m in (*DECIDERS, "api")]
        if index == 2:
            found += [ServiceProcess(m, 2, host=host, home=self.home) for m in DECIDERS]
        return found

    def service_env(self, service: ServiceProcess, node: LabNode) -> dict[str, str]:
        prefix, port = PORTS[service.module]
        env = {
            **os.environ,
            "SHOAL_STATE": str(self.home),
            "SHOAL_KAFKA_BOOTSTRAP": self.plan.bootstrap,
            "SHOAL_KAFKA_CREDENTIALS_FILE": str(
                self.credentials / f"{role_of(service.module)}.credentials"
            ),
            "SHOAL_KAFKA_REPLICATION_FACTOR": str(min(3, self.plan.brokers)),
            "SHOAL_SECRETS_KEY_FILE": str(self.home / "secrets.key"),
            f"SHOAL_{prefix}_HTTP_PORT": str(port),
            f"SHOAL_{prefix}_HTTP_HOST": "0.0.0.0",
            f"SHOAL_{prefix}_INSTANCE": service.name,
        }
        env.pop("SHOAL_API_TOKEN", None)
        if service.module == "node_agent":
            env |= {
                "DOCKER_HOST": self.engine(self.plan.all_hosts.index(node) + 1).socket,
                "SHOAL_NODE_ID": node.name,
                "SHOAL_NODE_ADDRESS": node.address,
                "SHOAL_NODE_NETWORK": "host",
                "SHOAL_NODE_SECRETS_DIR": f"/dev/shm/shoal-lab-{node.name}",
            }
        if service.module == "api":
            env |= {
                "SHOAL_API_TOKEN": self.api_token(),
                "SHOAL_API_PEER_URL": f"http://{node.address}:{port}",
                "SHOAL_API_DASHBOARD_PORT": "8081",
            }
        return env

    def up(self, *, images: dict[str, bytes]) -> None:
        """Make what is missing and start what is not running (idempotent)."""
        lab_net.check_can_build()
        self.save()
        make_key(self.home / "secrets.key")
        ensure_credentials(self.credentials)
        lab_net.make_switch(self.plan)
        for node in (*self.plan.all_brokers, *self.plan.all_hosts):
            lab_net.make_node(self.plan, node)
        self.start_brokers()
        for index in range(1, self.plan.hosts + 1):
            self.start_host(index, images)

    def start_brokers(self) -> None:
        brokers = [self.broker(j) for j in range(1, self.plan.brokers + 1)]
        for broker in brokers:
            if broker.pid() is None:
                broker.launch()
        for broker in brokers:
            broker.wait_listening(120)
        brokers[0].ensure_acls()
        bus = BusSettings.from_env(
            {
                "SHOAL_KAFKA_BOOTSTRAP": self.plan.bootstrap,
                "SHOAL_KAFKA_CREDENTIALS_FILE": str(self.credentials / f"{ADMIN}.credentials"),
                "SHOAL_KAFKA_REPLICATION_FACTOR": str(min(3, self.plan.brokers)),
            }
        )
        asyncio.run(ensure_topics(bus))

    def start_host(self, index: int, images: dict[str, bytes]) -> None:
        node = self.plan.host(index)
        engine = self.engine(index)
        engine.start()
        engine.load(images)
        for service in self.services(index):
            service.start(self.service_env(service, node))

    def kill(self, name: str) -> None:
        """SIGKILL everything in a host's or broker's namespace (its engine's containers
        with it)."""
        node = self._node(name)
        lab_net.kill_all(node.name)
        for path in self.home.glob(f"{node.name}/**/*.pid"):
            path.unlink(missing_ok=True)
        for path in (self.home / "run").glob(f"*@{node.name}.pid"):
            path.unlink(missing_ok=True)

    def start(self, name: str, images: dict[str, bytes]) -> None:
        """Start a killed host or broker again."""
        node = self._node(name)
        if node in self.plan.all_brokers:
            broker = self.broker(self.plan.all_brokers.index(node) + 1)
            broker.launch()
            broker.wait_listening(120)
        else:
            self.start_host(self.plan.all_hosts.index(node) + 1, images)

    def cut(self, name: str, *, off: bool) -> None:
        lab_net.cut(self.plan, self._node(name), off=off)

    def _node(self, name: str) -> LabNode:
        short = self._short
        for node in (*self.plan.all_hosts, *self.plan.all_brokers):
            if name in (node.name, short(node)):
                return node
        known = ", ".join(short(n) for n in self.plan.all_hosts)
        brokers = ", ".join(short(n) for n in self.plan.all_brokers)
        raise LabError(f"no lab host or broker {name!r} (hosts: {known}; brokers: {brokers})")

    def _short(self, node: LabNode) -> str:
        """A node's name without the lab's tag: h1, b2."""
        return node.name.removeprefix(f"{self.plan.tag}-")

    def down(self) -> None:
        """Stop everything and remove the namespaces (the lab's data stays)."""
        for node in (*self.plan.all_hosts, *self.plan.all_brokers):
            lab_net.kill_all(node.name)
        for index in range(1, self.plan.hosts + 1):
            self.engine(index).unmount()
        for node in (*self.plan.all_hosts, *self.plan.all_brokers):
            lab_net.remove(node.name)
        lab_net.remove_switch(self.plan)
        for path in self.home.glob("**/*.pid"):
            path.unlink(missing_ok=True)

    def status(self) -> list[tuple[str, str, str]]:
        """(name, address, what runs there) for each host and broker."""
        rows = []
        for node in (*self.plan.all_brokers, *self.plan.all_hosts):
            running = len(lab_net.pids_in(node.name)) if lab_net.exists(node.name) else 0
            rows.append((self._short(node), node.address, f"{running} processes"))
        return rows


def saved_test_images(client: Any, only: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The local test images (or `only` those), saved once, to load into a lab host's
    engine."""
    tags = [t for t in ensure_test_images(client).values() if not only or t in only]
    return {tag: b"".join(client.images.get(tag).save(named=True)) for tag in tags}
