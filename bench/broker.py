"""A Kafka broker for a benchmark: SHOAL_KAFKA_* if SHOAL_KAFKA_BOOTSTRAP is set, else a
temporary local one (authenticated, as every Shoal broker)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import docker

from events.bus import ensure_topics
from events.settings import BusSettings
from services.local.credentials import ADMIN
from services.local.images import ensure_test_images
from services.local.kafka_broker import BrokerLayout, LocalKafkaBroker
from tests.support.platform import Platform, running_platform
from tests.support.ports import free_port


@contextmanager
def kafka_bus() -> Iterator[BusSettings]:
    """The bus of a benchmark: from SHOAL_KAFKA_* when SHOAL_KAFKA_BOOTSTRAP is set, else a
    temporary local broker, signed in as its admin; name a namespace with `.named()`."""
    if os.environ.get("SHOAL_KAFKA_BOOTSTRAP"):
        yield BusSettings.from_env(os.environ)
        return
    with tempfile.TemporaryDirectory(prefix="shoal-bench-kafka-") as data:
        layout = BrokerLayout(
            data_dir=Path(data), port=free_port(), controller_port=free_port(), heap_mb=1024
        )
        broker = LocalKafkaBroker(layout)
        broker.start()
        try:
            yield BusSettings(bootstrap_servers=layout.bootstrap).signed_in(
                broker.credentials(ADMIN)
            )
        finally:
            broker.stop()


@asynccontextmanager
async def bench_platform(
    prefix: str, **options: Any
) -> AsyncIterator[tuple[Platform, BusSettings]]:
    """The whole platform as processes on a bench's broker, in a namespace of its own, with
    the test images built; `options` go to `running_platform` (agents, settings)."""
    client = docker.from_env()
    ensure_test_images(client)
    with kafka_bus() as base, tempfile.TemporaryDirectory() as logs:
        bus = base.named(f"{prefix}{uuid.uuid4().hex[:8]}")
        await ensure_topics(bus)
        async with running_platform(bus, Path(logs), client, **options) as platform:
            yield platform, bus
