"""Secrets end to end on real Kafka and Docker: a function reads its secret from a
read-only tmpfs file of its own user, rotating the secret rolls a revision that reads the
new value with no failed request, and the value is on no topic, in no log, answer or
replay; the node's files go with the replicas."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.settings import BusSettings
from events.spec import SECRETS_PATH
from services.common.labels import LABEL_FUNCTION
from services.node_agent.secret_files import secrets_dir_of
from tests.support.kafka_io import every_record_value
from tests.support.load import steady_load
from tests.support.platform import TOKEN, Platform, call, eventually, status_of

pytestmark = [pytest.mark.kafka, pytest.mark.docker]
SHOAL = str(Path(sys.executable).parent / "shoal")
FIRST, SECOND = "s3cr3t-first-9d2c41", "s3cr3t-second-77b0e5"
SERVE_SECRET = f"exec httpd -f -p 0.0.0.0:$PORT -h {SECRETS_PATH}/db"
SPEC = {
    "name": "reader",
    "image": "shoal-test/hello:1",
    "command": ["/bin/sh", "-c", SERVE_SECRET],
    "readiness_path": "",
    "secrets": ["db"],
    "min_replicas": 2,
    "initial_scale": 2,
    "cpu": 0.1,
    "memory_mb": 32,
}


async def shoal(platform: Platform, bus: BusSettings, *args: str) -> str:
    env = {**os.environ, "SHOAL_API_URL": platform.api.url, "SHOAL_API_TOKEN": TOKEN, **bus.env()}
    done = await asyncio.to_thread(
        subprocess.run, [SHOAL, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"shoal {' '.join(args)}: {done.stderr}{done.stdout}"
    return done.stdout + done.stderr


async def served(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        return f"{reply.status} {await reply.text()}"


async def test_a_function_reads_its_secret_from_a_file_and_rotation_rolls_it(
    platform: Platform, bus: BusSettings, docker_client: Any, tmp_path: Path
) -> None:
    value = tmp_path / "value"
    value.write_text(FIRST)
    outputs = [await shoal(platform, bus, "secret", "set", "db", f"--from-file=password={value}")]
    await call("POST", f"{platform.api.url}/v1/functions", SPEC, expect=201)
    await eventually(lambda: status_of(platform, "reader"), lambda s: s["ready"] == 2, 60)
    url = f"{platform.api.url}/fn/reader/password"
    assert await served(url) == f"200 {FIRST}"

    container = docker_client.containers.list(filters={"label": f"{LABEL_FUNCTION}=reader"})[0]
    listing = container.exec_run(["ls", "-ln", f"{SECRETS_PATH}/db"]).output.decode()
    assert "-r--------    1 65534    65534" in listing and "password" in listing, listing
    mounts = container.exec_run(["cat", "/proc/mounts"]).output.decode()
    (line,) = [m for m in mounts.splitlines() if f" {SECRETS_PATH} " in m]
    assert line.split()[2] == "tmpfs" and line.split()[3].startswith("ro"), line

    value.write_text(SECOND)
    async with steady_load(url) as load:
        await asyncio.sleep(0.5)
        outputs.append(
            await shoal(platform, bus, "secret", "set", "db", f"--from-file=password={value}")
        )
        await eventually(
            lambda: status_of(platform, "reader"),
            lambda s: (
                s["revision"] == 2
                and s["ready"] == 2
                and all(r["revision"] == 2 for r in s["replicas"])
            ),
            60,
        )
        await asyncio.sleep(0.5)
    load.assert_no_failures()
    assert load.total > 50
    assert await served(url) == f"200 {SECOND}"

    outputs += [
        await shoal(platform, bus, *args)
        for args in (["replay"], ["audit"], ["describe", "reader"])
    ]
    answers = [
        await call("GET", f"{platform.api.url}/v1/{path}")
        for path in ("functions", "functions/reader", "secrets")
    ]
    logs = await asyncio.to_thread(_logs, tmp_path)
    assert logs, "the services wrote logs to scan"
    topics = await every_record_value(bus)
    for plain in (FIRST, SECOND):
        for where, text in (
            ("a topic", topics),
            ("a service log", logs),
            ("an answer", repr(answers).encode()),
            ("the CLI", "".join(outputs).encode()),
        ):
            assert plain.encode() not in text, f"{plain} is in {where}"
    assert "db@2" in "".join(outputs)

    await call("DELETE", f"{platform.api.url}/v1/functions/reader", expect=202)
    folder = secrets_dir_of(platform.agents[0].node_id)
    await eventually(lambda: asyncio.to_thread(_folders, folder), lambda f: not f["folders"], 60)


def _logs(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.glob("*.log"))


def _folders(folder: Path) -> dict[str, list[str]]:
    return {"folders": sorted(p.name for p in folder.iterdir()) if folder.exists() else []}
