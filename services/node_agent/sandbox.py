"""How a replica's container is boxed in (pure): the Docker create options that hold a
hostile function to Pod Security "restricted" or tighter. No user, capability, mount,
device or privilege comes from the function's spec (it may only keep its root filesystem
writable); the image gives only its own numeric non-root user, and the volumes it declares
become small tmpfs mounts, never host disk; its secrets, one read-only folder on a tmpfs.
By default a replica has a network namespace of its own, on a bridge where replicas
cannot reach one another, and its port is published on the node address only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docker.types import LogConfig, Mount

from events.spec import SECRETS_PATH
from events.types import StartReplica
from services.common.labels import (
    LABEL_FUNCTION,
    LABEL_GENERATION,
    LABEL_NODE,
    LABEL_PORT,
    LABEL_REPLICA,
    LABEL_REVISION,
)
from services.node_agent.runtime import Running

NOBODY = "65534:65534"
REPLICA_NETWORK = "shoal-replicas"
NETWORK_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}
"""Replicas on the Shoal network cannot reach one another (no inter-container traffic)."""
TMP_MOUNT = "rw,nosuid,nodev,noexec,size=64m"
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Sandbox:
    """What every replica container of a node runs within."""

    pids_limit: int = 256
    log_max_bytes: int = 1 << 20
    log_files: int = 2
    network_name: str = REPLICA_NETWORK
    startup_cpu: float = 0.5
    """CPUs a replica whose limit is lower may use until it is ready (a startup boost, as
    Kubernetes' startup CPU boost gives): at 0.01 CPU, runc and the init alone take 2-3 s."""


def cpu_quota(cpu: float) -> int:
    """The CFS quota of a CPU limit (microseconds per CPU_PERIOD_US); a quota, not Docker's
    NanoCpus, because only a quota can be changed on a running container."""
    return int(cpu * CPU_PERIOD_US)


def container_name(replica_id: str) -> str:
    return f"shoal-{replica_id}"


@dataclass(frozen=True)
class ImageFacts:
    """What the node's engine says of an image: its id (what is run, so the image checked
    is the image started), its user and the volumes it declares."""

    id: str
    user: str = ""
    volumes: tuple[str, ...] = ()

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> ImageFacts:
        config = attrs.get("Config") or {}
        return cls(
            id=attrs["Id"],
            user=config.get("User") or "",
            volumes=tuple(sorted(config.get("Volumes") or {})),
        )


def run_as(image_user: str) -> str:
    """The image's user when it is a numeric uid (and gid) other than 0, else nobody: a
    name or a uid of 0 written otherwise ("00", "+0") could still mean root."""
    uid, _, gid = image_user.partition(":")
    if not uid.isdigit() or int(uid) == 0:
        return NOBODY
    group = int(gid) if gid.isdigit() and int(gid) != 0 else int(uid)
    return f"{int(uid)}:{group}"


def container_options(
    command: StartReplica,
    *,
    port: int,
    node_id: str,
    address: str,
    network: str,
    image: ImageFacts,
    sandbox: Sandbox,
    secrets_dir: str | None = None,
) -> dict[str, Any]:
    """The arguments of `containers.create` for one replica; `secrets_dir`, the node's
    folder of its secret files, is mounted read-only at SECRETS_PATH."""
    spec = command.spec
    host = network == "host"
    options: dict[str, Any] = {
        "image": image.id,
        "name": container_name(command.replica_id),
        "labels": {
            LABEL_FUNCTION: command.function,
            LABEL_REVISION: str(command.revision),
            LABEL_REPLICA: command.replica_id,
            LABEL_NODE: node_id,
            LABEL_PORT: str(port),
            LABEL_GENERATION: str(command.node_generation),
        },
        "environment": {
            **spec.env,
            "PORT": str(port if host else spec.port),
            "HOST": address if host else "0.0.0.0",
        },
        "entrypoint": spec.command or None,
        "command": spec.args or None,
        "user": run_as(image.user),
        "init": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": spec.read_only_root,
        "tmpfs": {"/tmp": TMP_MOUNT} | {path: TMP_MOUNT for path in image.volumes},
        "pids_limit": sandbox.pids_limit,
        "cpu_period": CPU_PERIOD_US,
        "cpu_quota": cpu_quota(max(spec.cpu, sandbox.startup_cpu)),
        "mem_limit": f"{spec.memory_mb}m",
        "memswap_limit": f"{spec.memory_mb}m",
        "restart_policy": {"Name": "no"},
        "log_config": LogConfig(
            type=LogConfig.types.JSON,
            config={"max-size": str(sandbox.log_max_bytes), "max-file": str(sandbox.log_files)},
        ),
    }
    if secrets_dir is not None:
        options["mounts"] = [
            Mount(target=SECRETS_PATH, source=secrets_dir, type="bind", read_only=True)
        ]
    if host:
        options["network_mode"] = "host"
    else:
        options["network"] = sandbox.network_name
        options["ports"] = {f"{spec.port}/tcp": (address, port)}
    return options


def running_of(labels: dict[str, str], status: str) -> Running | None:
    """A replica container as its labels tell (None when Shoal's labels are partial)."""
    try:
        return Running(
            replica_id=labels[LABEL_REPLICA],
            function=labels[LABEL_FUNCTION],
            revision=int(labels[LABEL_REVISION]),
            port=int(labels[LABEL_PORT]),
            running=status == "running",
            node_generation=int(labels.get(LABEL_GENERATION, "0")),
        )
    except (KeyError, ValueError):
        return None
