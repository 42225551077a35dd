"""How a replica's container is boxed in (pure): the Docker create options that hold a
hostile function to Pod Security "restricted" or tighter. No user, capability, mount,
device or privilege comes from the function's spec; only the image's own non-root user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docker.types import LogConfig

from events.types import StartReplica
from services.common.labels import (
    LABEL_FUNCTION,
    LABEL_GENERATION,
    LABEL_NODE,
    LABEL_PORT,
    LABEL_REPLICA,
    LABEL_REVISION,
)

NOBODY = "65534:65534"
ROOT_USERS = frozenset({"", "0", "root"})
TMP_MOUNT = "rw,nosuid,nodev,noexec,size=64m"


@dataclass(frozen=True)
class Sandbox:
    """What every replica container of a node runs within."""

    pids_limit: int = 256
    log_max_bytes: int = 1 << 20
    log_files: int = 2


def container_name(replica_id: str) -> str:
    return f"shoal-{replica_id}"


def run_as(image_user: str) -> str:
    """The image's user when it names one that is not root, else an unprivileged uid."""
    name = image_user.split(":", 1)[0].strip()
    return NOBODY if name in ROOT_USERS else image_user


def container_options(
    command: StartReplica,
    *,
    port: int,
    node_id: str,
    address: str,
    network: str,
    user: str,
    sandbox: Sandbox,
) -> dict[str, Any]:
    """The arguments of `containers.create` for one replica."""
    spec = command.spec
    host = network == "host"
    options: dict[str, Any] = {
        "image": spec.image,
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
        "user": user,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": spec.read_only_root,
        "tmpfs": {"/tmp": TMP_MOUNT},
        "pids_limit": sandbox.pids_limit,
        "nano_cpus": int(spec.cpu * 1e9),
        "mem_limit": f"{spec.memory_mb}m",
        "memswap_limit": f"{spec.memory_mb}m",
        "restart_policy": {"Name": "no"},
        "log_config": LogConfig(
            type=LogConfig.types.JSON,
            config={"max-size": str(sandbox.log_max_bytes), "max-file": str(sandbox.log_files)},
        ),
    }
    if host:
        options["network_mode"] = "host"
    else:
        options["ports"] = {f"{spec.port}/tcp": (address, port)}
    return options
