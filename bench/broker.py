"""A Kafka broker for a benchmark: SHOAL_KAFKA_* if SHOAL_KAFKA_BOOTSTRAP is set, else a
temporary local one (authenticated, as every Shoal broker)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from events.settings import BusSettings
from services.local.credentials import ADMIN
from services.local.kafka_broker import BrokerLayout, LocalKafkaBroker
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
