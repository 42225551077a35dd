"""The service runtime, run as a real process against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from events.settings import BusSettings
from events.topics import HEARTBEATS
from events.types import NodeHeartbeat
from services.common.settings import CommonSettings, SettingsError
from services.local.kafka_broker import LocalKafkaBroker
from tests.support.kafka_io import collect
from tests.support.ports import free_port


def start_sample(bus: BusSettings, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        **bus.env(),
        "SHOAL_SAMPLE_HTTP_PORT": str(port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.sample_service"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def wait_ready(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"service on port {port} not ready in {timeout_s} s")


@pytest.mark.kafka
async def test_a_service_serves_metrics_publishes_and_stops_cleanly_on_sigterm(
    bus: BusSettings,
) -> None:
    port = free_port()
    process = start_sample(bus, port)
    try:
        await wait_ready(port, 30)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
        assert "shoal_bus_events_sent_total" in text
        beats = await collect(bus, [HEARTBEATS], 3)
        assert all(isinstance(b.data, NodeHeartbeat) for b in beats)
        assert beats[0].source.startswith("/shoal/sample/")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines[-1]["msg"] == "stopped"
    assert all({"ts", "level", "msg"} <= set(line) for line in lines)


@pytest.mark.kafka
async def test_a_service_waits_for_kafka_with_back_off_and_starts_when_it_appears(
    own_broker: LocalKafkaBroker,
    own_bus: BusSettings,
) -> None:
    port = free_port()
    await asyncio.to_thread(own_broker.stop)
    process = start_sample(own_bus, port)
    try:
        await asyncio.sleep(3)
        assert process.poll() is None, "the service gave up instead of waiting for Kafka"
        await asyncio.to_thread(own_broker.start)
        await wait_ready(port, 45)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.communicate, timeout=15)
    assert process.returncode == 0


def test_settings_come_from_the_environment_with_defaults() -> None:
    settings = CommonSettings.from_env(
        {
            "SHOAL_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "SHOAL_API_HTTP_PORT": "8088",
            "SHOAL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SHOAL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        },
        service="api",
        default_port=8080,
    )
    assert settings.http_port == 8088
    assert settings.bus.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.bus.sasl_mechanism == "SCRAM-SHA-512"
    assert CommonSettings.from_env({}, service="api", default_port=8080).http_port == 8080


def test_a_bad_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="SHOAL_API_HTTP_PORT='eighty' is not a whole number"):
        CommonSettings.from_env({"SHOAL_API_HTTP_PORT": "eighty"}, service="api", default_port=1)
