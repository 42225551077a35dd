"""The healer's settings, from SHOAL_HEALER_* variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.settings import CommonSettings, SettingsError, env_float, env_int


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    node_timeout_s: float
    """A node silent for longer than this is lost."""
    tick_s: float
    progress_deadline_s: float
    """A new revision with no ready replica after this long is rolled back."""
    rollback_failures: int
    """A new revision failing this many times within its progress deadline is rolled back."""
    reconcile_s: float
    drift_grace_s: float
    start_grace_s: float
    stop_grace_s: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        settings = cls(
            common=CommonSettings.from_env(environ, service="healer", default_port=9103),
            node_timeout_s=env_float(environ, "SHOAL_HEALER_NODE_TIMEOUT_S", 3.0, minimum=0.001),
            tick_s=env_float(environ, "SHOAL_HEALER_TICK_S", 0.25, minimum=0.001),
            progress_deadline_s=env_float(environ, "SHOAL_HEALER_PROGRESS_DEADLINE_S", 120.0),
            rollback_failures=env_int(environ, "SHOAL_HEALER_ROLLBACK_FAILURES", 3),
            reconcile_s=env_float(environ, "SHOAL_HEALER_RECONCILE_S", 2.0),
            drift_grace_s=env_float(environ, "SHOAL_HEALER_DRIFT_GRACE_S", 2.0),
            start_grace_s=env_float(environ, "SHOAL_HEALER_START_GRACE_S", 30.0),
            stop_grace_s=env_float(environ, "SHOAL_HEALER_STOP_GRACE_S", 30.0),
        )
        if settings.node_timeout_s <= settings.tick_s:
            raise SettingsError(
                "SHOAL_HEALER_NODE_TIMEOUT_S must be longer than SHOAL_HEALER_TICK_S"
            )
        if settings.rollback_failures < 1:
            raise SettingsError("SHOAL_HEALER_ROLLBACK_FAILURES must be 1 or more")
        return settings
