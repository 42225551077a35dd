"""A Kafka broker for a benchmark: SHOAL_KAFKA_BOOTSTRAP if set, else a temporary local one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.local.kafka_broker import BrokerLayout, LocalKafkaBroker
from tests.support.ports import free_port


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    given = os.environ.get("SHOAL_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="shoal-bench-kafka-") as data:
        layout = BrokerLayout(
            data_dir=Path(data), port=free_port(), controller_port=free_port(), heap_mb=1024
        )
        broker = LocalKafkaBroker(layout)
        broker.start()
        try:
            yield layout.bootstrap
        finally:
            broker.stop()
