"""Settings every service has; each service's own Settings holds one of these."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from events.settings import BusSettings


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used; the message names it."""


def env_float(
    environ: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0
) -> float:
    """A finite number of at least `minimum` (by default not negative)."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name}={raw!r} must be a finite number of at least {minimum:g}")
    return value


def env_int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    """A whole number of at least `minimum` (by default not negative)."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class CommonSettings:
    service: str
    instance: str
    bus: BusSettings
    http_host: str
    http_port: int
    reuse_port: bool
    """Several instances may share the HTTP port (SO_REUSEPORT); the kernel spreads
    connections over them. Used to run more than one api on one host."""
    log_level: str
    keepalive_s: float
    """How long an idle keep-alive connection of a client is kept open."""
    backlog: int
    """The HTTP listener's accept backlog."""
    leader_session_s: float = 2.5
    """How long a decider's leader may go unheard before another instance takes its role."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, service: str, default_port: int
    ) -> CommonSettings:
        prefix = f"SHOAL_{service.upper().replace('-', '_')}_"
        return cls(
            service=service,
            instance=environ.get(
                f"{prefix}INSTANCE", f"{service}-{socket.gethostname()}-{os.getpid()}"
            ),
            bus=BusSettings.from_env(environ),
            http_host=environ.get(f"{prefix}HTTP_HOST", "127.0.0.1"),
            http_port=env_int(environ, f"{prefix}HTTP_PORT", default_port),
            reuse_port=environ.get(f"{prefix}REUSE_PORT", "") in ("1", "true", "yes"),
            log_level=environ.get("SHOAL_LOG_LEVEL", "INFO").upper(),
            keepalive_s=env_float(environ, f"{prefix}KEEPALIVE_S", 15.0, minimum=0.1),
            backlog=env_int(environ, f"{prefix}BACKLOG", 1024, minimum=1),
            leader_session_s=env_float(environ, f"{prefix}LEADER_SESSION_S", 2.5, minimum=1.0),
        )

    @property
    def source(self) -> str:
        """The CloudEvents source of everything this instance publishes."""
        return f"/shoal/{self.service}/{self.instance}"
