"""Session fixtures: a real Kafka broker (started here, on free ports) and the real Docker
Engine. When either cannot be had, the tests that need it FAIL with what to do; never skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.bus import ensure_topics
from events.settings import BusSettings
from services.local.credentials import ADMIN
from services.local.kafka_broker import BrokerError, BrokerLayout, LocalKafkaBroker
from tests.support.ports import free_port

HOW_TO_PROVISION = "run ./scripts/test.sh, which provisions Kafka and Docker before pytest"


def started_broker(data_dir: Path) -> LocalKafkaBroker:
    layout = BrokerLayout(
        data_dir=data_dir, port=free_port(), controller_port=free_port(), heap_mb=384
    )
    broker = LocalKafkaBroker(layout)
    try:
        broker.start()
    except (BrokerError, OSError) as exc:
        pytest.fail(
            f"a real Kafka broker is required and could not start: {exc}; {HOW_TO_PROVISION}",
            pytrace=False,
        )
    return broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaBroker]:
    broker = started_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafkaBroker]:
    """A broker of the test's own, for a test that stops or kills it: by then the shared
    one holds thousands of partitions, and recovering them after a kill takes minutes."""
    broker = started_broker(tmp_path / "kafka")
    yield broker
    broker.stop(kill=True)


@pytest.fixture
def namespace() -> str:
    """A topic namespace of the test's own, so tests never see each other's events."""
    return f"t{uuid.uuid4().hex[:10]}"


async def bus_on(broker: LocalKafkaBroker, namespace: str) -> BusSettings:
    settings = BusSettings(
        bootstrap_servers=broker.layout.bootstrap, namespace=namespace, connect_timeout_s=45.0
    ).signed_in(broker.credentials(ADMIN))
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def bus(kafka_broker: LocalKafkaBroker, namespace: str) -> BusSettings:
    return await bus_on(kafka_broker, namespace)


@pytest.fixture
async def own_bus(own_broker: LocalKafkaBroker, namespace: str) -> BusSettings:
    """The bus on the test's own broker (see `own_broker`)."""
    return await bus_on(own_broker, namespace)


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
