"""Session fixtures: a real Kafka broker (started here, on free ports) and the real Docker
Engine. When either cannot be had, the tests that need it FAIL with what to do; never skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from events.bus import ensure_topics
from events.settings import BusSettings
from services.local.kafka_broker import BrokerError, BrokerLayout, LocalKafkaBroker
from tests.support.ports import free_port

HOW_TO_PROVISION = "run ./scripts/test.sh, which provisions Kafka and Docker before pytest"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaBroker]:
    layout = BrokerLayout(
        data_dir=tmp_path_factory.mktemp("kafka"),
        port=free_port(),
        controller_port=free_port(),
        heap_mb=384,
    )
    broker = LocalKafkaBroker(layout)
    try:
        broker.start()
    except (BrokerError, OSError) as exc:
        pytest.fail(
            f"a real Kafka broker is required and could not start: {exc}; {HOW_TO_PROVISION}",
            pytrace=False,
        )
    yield broker
    broker.stop()


@pytest.fixture
def namespace() -> str:
    """A topic namespace of the test's own, so tests never see each other's events."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def bus(kafka_broker: LocalKafkaBroker, namespace: str) -> AsyncIterator[BusSettings]:
    settings = BusSettings(
        bootstrap_servers=kafka_broker.layout.bootstrap,
        namespace=namespace,
        connect_timeout_s=45.0,
    )
    await ensure_topics(settings)
    yield settings


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        pytest.fail(
            f"the real Docker Engine is required and is not reachable: {exc}; {HOW_TO_PROVISION}",
            pytrace=False,
        )
    yield client
    client.close()


def pytest_report_header() -> str:
    return f"shoal: CI={os.environ.get('CI', '')!r}; Kafka and Docker tests fail when absent"
