"""The api's settings, from SHOAL_API_* variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.api.relay import peer_address
from services.common.sealing import SealingKey, key_from_env
from services.common.settings import CommonSettings, SettingsError, env_float, env_int


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    token: str
    max_body_bytes: int
    queue_limit: int
    stats_interval_s: float
    demand_repeat_s: float
    connect_timeout_s: float
    max_functions: int
    body_budget_bytes: int
    dashboard_port: int
    """The dashboard's own port: an origin apart from /fn, whose pages are the functions'."""
    sealing_key: SealingKey | None
    """The key that seals secrets (SHOAL_SECRETS_KEY_FILE); without it, secrets are off."""
    peer_url: str
    """Where the other api instances reach this one to relay calls (SHOAL_API_PEER_URL)."""
    handoff_s: float
    """How long a leaving instance waits for its calls on limited replicas to end."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        token = environ.get("SHOAL_API_TOKEN", "")
        if len(token) < 8:
            raise SettingsError("SHOAL_API_TOKEN must be set to a token of 8 or more characters")
        common = CommonSettings.from_env(environ, service="api", default_port=8080)
        dashboard_port = env_int(environ, "SHOAL_API_DASHBOARD_PORT", 8081, minimum=1)
        if dashboard_port > 65535 or dashboard_port == common.http_port:
            raise SettingsError(
                f"SHOAL_API_DASHBOARD_PORT={dashboard_port} must be a port other than the api's"
            )
        return cls(
            common=common,
            token=token,
            max_body_bytes=env_int(environ, "SHOAL_API_MAX_BODY_BYTES", 1 << 20),
            queue_limit=env_int(environ, "SHOAL_API_QUEUE_LIMIT", 100),
            stats_interval_s=env_float(environ, "SHOAL_API_STATS_INTERVAL_S", 1.0, minimum=0.001),
            demand_repeat_s=env_float(environ, "SHOAL_API_DEMAND_REPEAT_S", 1.0),
            connect_timeout_s=env_float(environ, "SHOAL_API_CONNECT_TIMEOUT_S", 2.0, minimum=0.001),
            max_functions=env_int(environ, "SHOAL_API_MAX_FUNCTIONS", 500),
            body_budget_bytes=env_int(
                environ, "SHOAL_API_BODY_BUDGET_BYTES", 256 << 20, minimum=64 << 20
            ),
            dashboard_port=dashboard_port,
            sealing_key=key_from_env(environ),
            peer_url=peer_url(environ, common.http_port),
            handoff_s=env_float(environ, "SHOAL_API_HANDOFF_S", 3.0),
        )


def peer_url(environ: Mapping[str, str], port: int) -> str:
    """SHOAL_API_PEER_URL, an http:// URL of an IP address and port (the relay's client
    takes no names); by default this host's loopback and the api's port."""
    url = environ.get("SHOAL_API_PEER_URL") or f"http://127.0.0.1:{port}"
    try:
        return peer_address(url)
    except ValueError:
        raise SettingsError(
            f"SHOAL_API_PEER_URL={url!r} must be http://ADDRESS:PORT with an IP address"
        ) from None
