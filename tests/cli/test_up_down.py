"""`shoal up`, `status` and `down` as a user runs them, on a state folder of the test's own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from events.settings import BusSettings
from events.topics import ALL_TOPICS
from services.local.paths import kafka_jars_dir
from tests.support.kcat import kcat_list, partition_counts
from tests.support.ports import free_port

SHOAL = str(Path(sys.executable).parent / "shoal")


def shoal(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHOAL, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.kafka
def test_up_starts_a_broker_with_every_topic_and_down_stops_it(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "jars").symlink_to(kafka_jars_dir())
    port = free_port()
    env = {
        **os.environ,
        "SHOAL_STATE": str(tmp_path),
        "SHOAL_KAFKA_PORT": str(port),
        "SHOAL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "SHOAL_NODE_ID": f"cli-test-{port}",
        "SHOAL_NODE_PORT_FIRST": "29900",
        "SHOAL_NODE_PORT_LAST": "29999",
        "SHOAL_API_DASHBOARD_PORT": str(free_port()),
        **{
            f"SHOAL_{name}_HTTP_PORT": str(free_port())
            for name in ("API", "SCHEDULER", "AUTOSCALER", "HEALER", "NODE")
        },
    }
    try:
        up = shoal("up", env=env)
        assert up.returncode == 0, up.stderr
        again = shoal("up", env=env)
        assert again.returncode == 0, again.stderr
        assert shoal("status", env=env).returncode == 0
        credentials = tmp_path / "kafka" / "data" / "credentials"
        admin = BusSettings(bootstrap_servers=f"127.0.0.1:{port}").signed_in(
            credentials / "admin.credentials"
        )
        found = asyncio.run(partition_counts(admin))
        for topic in ALL_TOPICS:
            assert found[topic.name("shoal")] == topic.partitions
        assert sorted(p.name for p in credentials.iterdir()) == [
            f"{name}.credentials"
            for name in ("admin", "api", "autoscaler", "controller", "healer", "node", "scheduler")
        ]
        assert all(p.stat().st_mode & 0o077 == 0 for p in credentials.iterdir())
        kafka_data, logs = tmp_path / "kafka" / "data", tmp_path / "logs"
        for folder in (tmp_path, kafka_data, kafka_data / "logs", logs):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
        assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o400
        segments = list((kafka_data / "logs").glob("functions.shoal-0/*.log"))
        written = [*segments, kafka_data / "broker.log", *logs.glob("*.log")]
        assert segments and all(p.stat().st_mode & 0o077 == 0 for p in written), written
        assert kcat_list(f"127.0.0.1:{port}", None, tmp_path).returncode != 0
        api = f"http://127.0.0.1:{env['SHOAL_API_HTTP_PORT']}"
        with urllib.request.urlopen(f"{api}/fn/hello/", timeout=30) as reply:
            assert reply.read() == b"hello from shoal\n"
        api_pid = int((tmp_path / "run" / "api.child.pid").read_text())
        for name in ("api", "scheduler", "node_agent"):
            child = int((tmp_path / "run" / f"{name}.child.pid").read_text())
            environ = Path(f"/proc/{child}/environ").read_bytes()
            assert (b"SHOAL_API_TOKEN=" in environ) == (name == "api"), name
            assert (b"SHOAL_SECRETS_KEY_FILE=" in environ) == (name != "scheduler"), name
        deciders = one_leads_each(env) + two_apis_share(env)
        os.kill(api_pid, signal.SIGKILL)
        assert answers_again(f"{api}/readyz", timeout_s=30), "the supervisor restarted the api"
        restarted = int((tmp_path / "run" / "api.child.pid").read_text())
        assert restarted != api_pid
    finally:
        down = shoal("down", env=env)
    assert not alive(restarted), "shoal down leaves no service process behind"
    assert not [pid for pid in deciders if alive(pid)], "nor any decider instance"
    assert down.returncode == 0, down.stderr
    assert "replicas   removed  1 on node" in down.stdout
    status = shoal("status", env=env)
    assert status.returncode == 1
    assert "kafka      stopped" in status.stdout


def one_leads_each(env: dict[str, str], timeout_s: float = 30) -> list[int]:
    """`shoal status` shows two instances of each decider, one leading; their pids."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = shoal("status", env=env).stdout
        lines = {line.split()[0]: line for line in shown.splitlines() if line.strip()}
        roles = ("scheduler", "autoscaler", "healer")
        pairs = [(lines.get(r, ""), lines.get(f"{r}-2", "")) for r in roles]
        if all(
            {"leads" in a, "leads" in b} == {True, False} and ("standby" in a + b) for a, b in pairs
        ):
            break
        assert time.monotonic() < deadline, f"not one leader of each role:\n{shown}"
        time.sleep(0.5)
    state = Path(env["SHOAL_STATE"]) / "run"
    return [int((state / f"{r}{n}.child.pid").read_text()) for r in roles for n in ("", "-2")]


def two_apis_share(env: dict[str, str], timeout_s: float = 30) -> list[int]:
    """`shoal status` shows two api instances, each sharing with the other; their pids."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = shoal("status", env=env).stdout
        lines = [line for line in shown.splitlines() if line.split()[:1] in (["api"], ["api-2"])]
        if len(lines) == 2 and all("limits with 1 peer(s)" in line for line in lines):
            break
        assert time.monotonic() < deadline, f"the two apis do not share:\n{shown}"
        time.sleep(0.5)
    return [int((Path(env["SHOAL_STATE"]) / "run" / "api-2.child.pid").read_text())]


def answers_again(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_says_what_to_do_when_the_kafka_jars_are_missing(tmp_path: Path) -> None:
    env = {**os.environ, "SHOAL_STATE": str(tmp_path), "SHOAL_KAFKA_PORT": str(free_port())}
    result = shoal("up", env=env)
    assert result.returncode == 1
    assert "Kafka jars are missing" in result.stderr
    assert "./scripts/start.sh" in result.stderr
