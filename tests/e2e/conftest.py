"""Fixtures for end-to-end tests of the whole platform on real Kafka and Docker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.settings import BusSettings
from events.topics import DEMAND, FUNCTIONS, REPLICAS, SCALE
from services.local.images import ensure_test_images
from tests.support.event_log import EventLog
from tests.support.platform import AUTH, Platform, running_platform

__all__ = ["AUTH", "Platform"]


@pytest.fixture
async def platform(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(bus, tmp_path, docker_client) as parts:
        yield parts


@pytest.fixture
async def history(bus: BusSettings) -> AsyncIterator[EventLog]:
    async with EventLog(bus, [FUNCTIONS, SCALE, REPLICAS, DEMAND]) as log:
        yield log
