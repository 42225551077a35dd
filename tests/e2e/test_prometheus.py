"""Debian's real Prometheus server scrapes a running platform with deploy/prometheus.yml
(its targets moved to the test's ports) and answers a query for a metric of each service."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.e2e.conftest import AUTH, Platform
from tests.support.ports import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

CONFIG = Path(__file__).parents[2] / "deploy" / "prometheus.yml"
ONE_METRIC_OF_EACH = {
    "api": "shoal_api_requests_total",
    "autoscaler": "shoal_autoscaler_desired_replicas",
    "scheduler": "shoal_scheduler_pending_replicas",
    "healer": "shoal_healer_nodes",
    "node-agent": "shoal_node_containers",
}


def test_the_shipped_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    checked = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(CONFIG)], capture_output=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"] for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    assert jobs == set(ONE_METRIC_OF_EACH)


async def test_prometheus_scrapes_a_metric_of_every_service(
    platform: Platform, tmp_path: Path
) -> None:
    server = shutil.which("prometheus")
    assert server, "prometheus is missing: apt-get install prometheus"
    ports = {
        "api": platform.api.http_port,
        "autoscaler": platform.autoscaler.http_port,
        "scheduler": platform.scheduler.http_port,
        "healer": platform.healer.http_port,
        "node-agent": platform.agents[0].http_port,
    }
    config = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
        if "authorization" in job:  # the api's /metrics needs a read token
            token_file = tmp_path / "read-token"
            token_file.write_text(AUTH["Authorization"].removeprefix("Bearer "))
            job["authorization"]["credentials_file"] = str(token_file)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    async with aiohttp.ClientSession() as http:
        spec = {"name": "hello", "image": "shoal-test/hello:1", "cpu": 0.1, "memory_mb": 32}
        async with http.post(f"{platform.api.url}/v1/functions", json=spec, headers=AUTH) as r:
            assert r.status == 201, await r.text()
        for _ in range(3):
            async with http.get(f"{platform.api.url}/fn/hello/") as r:
                assert r.status == 200
        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                server,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            found = await _until_every_metric(http, f"http://127.0.0.1:{port}", tmp_path)
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert set(found) == set(ONE_METRIC_OF_EACH)
    assert any(s["metric"].get("function") == "hello" for s in found["api"])


async def _until_every_metric(
    http: aiohttp.ClientSession, prometheus: str, logs: Path, timeout_s: float = 40
) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout_s
    found: dict[str, list[dict[str, Any]]] = {}
    while True:
        for job, metric in ONE_METRIC_OF_EACH.items():
            if job in found:
                continue
            try:
                async with http.get(
                    f"{prometheus}/api/v1/query", params={"query": f'{metric}{{job="{job}"}}'}
                ) as reply:
                    answer = await reply.json()
            except aiohttp.ClientConnectionError:
                break
            if answer.get("status") == "success" and answer["data"]["result"]:
                found[job] = answer["data"]["result"]
        if len(found) == len(ONE_METRIC_OF_EACH):
            return found
        if time.monotonic() > deadline:
            tail = (logs / "prometheus.log").read_text()[-2000:]
            raise AssertionError(f"only {sorted(found)} answered in {timeout_s} s:\n{tail}")
        await asyncio.sleep(0.5)
