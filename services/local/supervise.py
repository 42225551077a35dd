"""`python -m services.local.supervise NAME`: run the service `services.NAME` and start it
again when it dies, with back-off, until told to stop (SIGTERM/SIGINT, passed on to it).
`shoal up` runs every service under one of these."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from services.local.paths import REPO_ROOT, state_dir
from services.local.processes import PORTS

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STABLE_AFTER_S = 60.0
HEALTH_EVERY_S = 5.0
UNHEALTHY_TIMES = 3
"""A service whose /healthz fails this many times in a row (a loop stalled) is killed and
started again, as a Kubernetes liveness probe would."""


def restart_delay(previous_delay: float, uptime_s: float) -> float:
    """Back-off before the next start (pure): 1 s doubling to 30 s, and back to 1 s once
    the service had stayed up for a minute."""
    if uptime_s >= STABLE_AFTER_S or previous_delay <= 0:
        return FIRST_DELAY_S
    return min(MAX_DELAY_S, previous_delay * 2)


def child_pid_file(name: str) -> Path:
    return state_dir() / "run" / f"{name}.child.pid"


def log(name: str, message: str, **fields: object) -> None:
    line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "logger": "shoal.supervise"}
    print(json.dumps({**line, "msg": message, "service": name, **fields}), flush=True)


def health_url(module: str) -> str | None:
    """The instance's /healthz: its port is in its environment (`ServiceProcess.own_env`),
    or the service's default."""
    if module not in PORTS:
        return None
    prefix, default = PORTS[module]
    port = os.environ.get(f"SHOAL_{prefix}_HTTP_PORT") or str(default)
    return f"http://127.0.0.1:{port}/healthz"


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def watch_health(module: str, name: str, child: subprocess.Popen[bytes]) -> None:
    """Once the child answered /healthz, kill it when it stops answering well."""
    url = health_url(module)
    if url is None:
        return
    answered, failures = False, 0
    while child.poll() is None:
        time.sleep(HEALTH_EVERY_S)
        good = healthy(url)
        answered = answered or good
        failures = 0 if good else failures + 1
        if answered and failures >= UNHEALTHY_TIMES and child.poll() is None:
            log(name, "service unhealthy (a loop stalled); killing it", checks=failures)
            child.kill()
            return


def supervise(module: str, name: str) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 0.0
    restarts = 0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", f"services.{module}"], cwd=REPO_ROOT)
        child_pid_file(name).write_text(str(child.pid))
        threading.Thread(target=watch_health, args=(module, name, child), daemon=True).start()
        code = child.wait()
        if stopping:
            break
        delay = restart_delay(delay, time.monotonic() - started)
        restarts += 1
        log(name, "service died; starting it again", code=code, restarts=restarts, in_s=delay)
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    child_pid_file(name).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]))
