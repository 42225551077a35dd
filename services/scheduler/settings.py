"""The scheduler's settings, from SHOAL_SCHEDULER_* variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.settings import CommonSettings, SettingsError, env_float, env_int
from services.scheduler.placement import Policy


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    policy: Policy
    sample: int
    drain_s: float
    heartbeat_stale_s: float
    plan_interval_s: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        policy = environ.get("SHOAL_SCHEDULER_POLICY", "spread")
        if policy not in ("spread", "binpack"):
            raise SettingsError(f"SHOAL_SCHEDULER_POLICY={policy!r} must be spread or binpack")
        return cls(
            common=CommonSettings.from_env(environ, service="scheduler", default_port=9102),
            policy=policy,  # type: ignore[arg-type]
            sample=env_int(environ, "SHOAL_SCHEDULER_SAMPLE_NODES", 100),
            drain_s=env_float(environ, "SHOAL_SCHEDULER_DRAIN_S", 2.0),
            heartbeat_stale_s=env_float(environ, "SHOAL_SCHEDULER_HEARTBEAT_STALE_S", 10.0),
            plan_interval_s=env_float(
                environ, "SHOAL_SCHEDULER_PLAN_INTERVAL_S", 0.02, minimum=0.001
            ),
        )
