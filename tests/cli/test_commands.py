"""The `shoal` CLI as a user runs it (a subprocess) against the running platform: a
scripted scenario (deploy, call, scale, crash, a rollback), then what `audit` and `replay`
say of it, and the errors users make."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from events.settings import BusSettings
from services.common.labels import LABEL_REPLICA
from services.local.images import ensure_test_images
from tests.support.platform import TOKEN, Platform, running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

SHOAL = str(Path(sys.executable).parent / "shoal")


@pytest.fixture
async def platform(bus: BusSettings, tmp_path: Path, docker_client: Any) -> AsyncIterator[Platform]:
    ensure_test_images(docker_client)
    async with running_platform(
        bus, tmp_path, docker_client, SHOAL_HEALER_PROGRESS_DEADLINE_S="8"
    ) as parts:
        yield parts


Shoal = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def shoal(platform: Platform, bus: BusSettings, tmp_path: Path) -> Shoal:
    env = {
        **os.environ,
        "SHOAL_API_URL": platform.api.url,
        "SHOAL_API_TOKEN": TOKEN,
        **bus.env(),
        "SHOAL_STATE": str(tmp_path / "state"),
    }

    def run(*args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [SHOAL, *args], env={**env, **extra}, capture_output=True, text=True, timeout=150
        )
        if check:
            assert done.returncode == 0, f"shoal {' '.join(args)}: {done.stderr}{done.stdout}"
        return done

    return run


BUSY = {
    "name": "busy",
    "image": "shoal-test/sleep:1",
    "cpu": 0.1,
    "memory_mb": 32,
    "min_replicas": 1,
    "max_replicas": 3,
    "target": 2,
    "target_utilization": 1.0,
    "concurrency_limit": 2,
    "stable_window_s": 6,
    "env": {"SLEEP_S": "0.3"},
}


@contextlib.contextmanager
def steady_calls(url: str, workers: int) -> Iterator[None]:
    """`workers` threads calling `url` until the block ends."""
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=30) as reply:
                reply.read()

    threads = [threading.Thread(target=call) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def until(probe: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.3)


def test_a_scripted_scenario_and_its_audit_trail(
    shoal: Shoal, platform: Platform, docker_client: Any, tmp_path: Path
) -> None:
    spec = tmp_path / "hello.yaml"
    spec.write_text(
        "name: hello\nimage: shoal-test/hello:1\ncpu: 0.1\nmemory_mb: 32\n"
        "min_replicas: 1\nmax_replicas: 3\n"
    )
    deployed = as_json(shoal("deploy", "-f", str(spec), "-o", "json"))
    assert deployed["ready"] == 1 and deployed["revision"] == 1
    after_deploy = datetime.now(UTC)
    assert "hello" in shoal("ls").stdout
    assert [f["name"] for f in as_json(shoal("ls", "-o", "json"))] == ["hello"]
    assert shoal("invoke", "hello").stdout == "hello from shoal\n"
    assert "revision:" in shoal("describe", "hello").stdout

    shoal("scale", "hello", "2")
    until(lambda: as_json(shoal("describe", "hello", "-o", "json"))["ready"] == 2)

    victim = as_json(shoal("describe", "hello", "-o", "json"))["replicas"][0]["id"]
    (container,) = docker_client.containers.list(filters={"label": f"{LABEL_REPLICA}={victim}"})
    assert f"== {victim} (running, " in shoal("logs", "hello").stdout
    container.kill()
    until(
        lambda: (
            victim
            not in {r["id"] for r in as_json(shoal("describe", "hello", "-o", "json"))["replicas"]}
            and as_json(shoal("describe", "hello", "-o", "json"))["ready"] == 2
        )
    )

    crash = shoal("deploy", "hello", "--image", "shoal-test/crash:1", check=False)
    assert crash.returncode == 1
    assert "revision 2 of hello was rolled back" in crash.stderr

    changed = as_json(shoal("deploy", "hello", "-e", "GREETING=hi", "-o", "json"))
    assert changed["revision"] == 3
    shoal("rollback", "hello", "1")
    until(lambda: as_json(shoal("describe", "hello", "-o", "json"))["revision"] == 1)

    busy = tmp_path / "busy.json"
    busy.write_text(json.dumps(BUSY))
    shoal("deploy", "-f", str(busy))
    with steady_calls(f"{platform.api.url}/fn/busy/cgi-bin/sleep", workers=6):
        until(lambda: (as_json(shoal("describe", "busy", "-o", "json"))["desired"] or 0) >= 2)
        top = {row["function"]: row for row in as_json(shoal("top", "-o", "json"))}
    assert top["busy"]["rps"] > 0 and top["busy"]["concurrency"] > 0
    assert top["hello"]["ready"] >= 1
    grown = [
        d
        for d in as_json(
            shoal("audit", "--function", "busy", "--type", "scale.decision", "-o", "json")
        )
        if "busy 1 -> " in d["text"]
    ]
    assert grown, "the load's scale decision is in the audit"
    stats = {
        e["id"]: e for e in as_json(shoal("audit", "--metrics", "--function", "busy", "-o", "json"))
    }
    cause = stats[grown[0]["causation_id"]]
    assert cause["type"] == "dev.shoal.metrics.requests", cause
    shoal("delete", "busy")
    until(lambda: "busy" not in {f["name"] for f in as_json(shoal("ls", "-o", "json"))})

    audit = shoal("audit", "--function", "hello").stdout
    for step in (
        "api        deployed hello revision 1 (shoal-test/hello:1)",
        "autoscaler scaled hello 0 -> 1: ",
        "api        pinned hello at 2 replicas",
        "scheduler  start hello-1-",
        "failed: ",
        "code 137",
        "healer     rolled back hello revision 2 -> 1: revision 2 failed",
        "code 3",
        "api        rolled back hello revision 3 -> 1: rollback requested",
    ):
        assert step in audit, f"{step!r} not in the audit:\n{audit}"
    checked = shoal("audit", "--check")
    assert "started once" in checked.stdout and "VIOLATION" not in checked.stdout, checked.stdout
    report = as_json(shoal("audit", "--check", "-o", "json"))
    assert report["violations"] == [] and report["checked"]["started once"] >= 3, report
    decisions = as_json(shoal("audit", "--type", "scale.decision", "-o", "json"))
    assert decisions and all(d["type"] == "dev.shoal.scale.decision" for d in decisions)
    assert all(d["causation_id"] for d in decisions), "every decision names its cause"

    then = as_json(shoal("replay", "--at", after_deploy.isoformat(), "-o", "json"))
    assert then["functions"]["hello"]["revision"] == 1
    assert then["functions"]["hello"]["ready"] == 1
    now = as_json(shoal("replay", "-o", "json"))
    assert set(now["functions"]) == {"hello"}
    assert {n for n in now["nodes"]} == {platform.agents[0].node_id}
    changes = shoal("replay", "--diff", after_deploy.isoformat(), "now").stdout
    assert "+ replica hello-" in changes and "- replica hello-1-" in changes, changes


def test_nodes_and_the_errors_users_make(shoal: Shoal, platform: Platform) -> None:
    node = platform.agents[0].node_id
    until(lambda: [n["node"] for n in as_json(shoal("nodes", "-o", "json"))] == [node])
    assert node in shoal("nodes").stdout
    shoal("nodes", "cordon", node)
    until(lambda: as_json(shoal("nodes", "ls", "-o", "json"))[0]["cordoned"])
    shoal("nodes", "uncordon", node)

    missing = shoal("describe", "ghost", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("shoal: no function named 'ghost' [404]")
    assert shoal("scale", "ghost", "-1", check=False).returncode == 2
    assert shoal("deploy", check=False).returncode == 2
    bad = shoal("deploy", "Bad_Name", "--image", "x", check=False)
    assert bad.returncode == 1 and "name" in bad.stderr and "[422]" in bad.stderr
    wrong_token = shoal("ls", check=False, SHOAL_API_TOKEN="not-the-token")
    assert wrong_token.returncode == 1 and "[401]" in wrong_token.stderr
    away = shoal("ls", check=False, SHOAL_API_URL="http://127.0.0.1:9")
    assert away.returncode == 1 and "unreachable" in away.stderr and "shoal up" in away.stderr
    late = shoal("audit", "--since", "yesterday", check=False)
    assert late.returncode == 2 and "is not a time" in late.stderr
    gone = shoal(
        "audit",
        check=False,
        SHOAL_KAFKA_BOOTSTRAP="127.0.0.1:9",
        SHOAL_KAFKA_CONNECT_TIMEOUT_S="2",
    )
    assert gone.returncode == 1 and "Kafka" in gone.stderr
