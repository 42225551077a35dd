"""The autoscaler's settings, from SHOAL_AUTOSCALER_* variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.settings import CommonSettings, env_float, env_int


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    tick_s: float
    cpu_sample_fresh_s: float
    max_replicas: int
    """The platform's cap: no function scales above it, whatever its spec says."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            common=CommonSettings.from_env(environ, service="autoscaler", default_port=9101),
            tick_s=env_float(environ, "SHOAL_AUTOSCALER_TICK_S", 2.0, minimum=0.001),
            cpu_sample_fresh_s=env_float(environ, "SHOAL_AUTOSCALER_CPU_FRESH_S", 15.0),
            max_replicas=env_int(environ, "SHOAL_AUTOSCALER_MAX_REPLICAS", 100),
        )
