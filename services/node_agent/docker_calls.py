"""Calls to the Docker Engine through the docker SDK: blocking, so each runs in threads
of its own kind (a lane), with a timeout; and the replicas' network, made once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import requests
from docker.errors import APIError, DockerException
from prometheus_client import Counter

from services.node_agent.runtime import RuntimeStartError
from services.node_agent.sandbox import NETWORK_OPTIONS

T = TypeVar("T")
DOCKER_ERRORS = Counter(
    "shoal_node_docker_errors_total", "Docker Engine calls that failed", ["operation", "error"]
)
Kind = Literal["create", "start", "stop", "read", "stats"]
LANES: dict[Kind, int] = {"create": 8, "start": 32, "stop": 8, "read": 4, "stats": 2}
"""Threads per kind of Docker call: each kind waits only behind its own, so stops in flight
never delay a start, nor a storm of stats the crash watcher's reads. A stop holds a thread
only for its two short calls (the signal, then the removal), never for its grace. Starting
a created container waits mostly on the container's own first steps, which its CPU limit
throttles (2-3 s at 0.01 CPU), not on the engine: many run at once."""


def unreachable(exc: BaseException) -> bool:
    """Whether a failed call means the engine cannot be reached (not that it refused)."""
    if isinstance(exc, APIError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | FileNotFoundError):
        return True
    return isinstance(exc, DockerException) and "connection" in str(exc).lower()


def ensure_replica_network(client: Any, name: str, labels: dict[str, str]) -> None:
    """The replicas' bridge with inter-container traffic off, made if missing (a blocking
    SDK call); one of that name that lets replicas reach one another is refused."""
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    for network in found:
        options = network.attrs.get("Options") or {}
        if any(options.get(key) != value for key, value in NETWORK_OPTIONS.items()):
            raise RuntimeStartError(
                f"the network {name} lets replicas reach one another; remove it "
                "(docker network rm) and the node-agent makes it again"
            )
    if not found:
        try:
            client.networks.create(
                name,
                driver="bridge",
                options=NETWORK_OPTIONS,
                labels=labels,
                check_duplicate=True,
            )
        except APIError as exc:
            if exc.status_code != 409:  # made meanwhile by another agent of this host
                raise
    for extra in sorted(found, key=lambda n: n.attrs.get("Created", ""))[1:]:
        remove_duplicate(extra)


def remove_duplicate(network: Any) -> None:
    """A second network of the replicas' name (engines before API 1.44 let two agents of a
    host race to make one each), removed unless a container uses it: a name that matches
    two networks makes every start fail as ambiguous."""
    try:
        network.reload()
        if not network.attrs.get("Containers"):
            network.remove()
    except APIError:
        pass  # removed meanwhile, or a container joined it: the next look decides again


class DockerCalls:
    """Blocking SDK calls, each in its kind's lane, within a timeout; it keeps whether the
    engine answered the last one."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.available = True
        self._lanes = {
            kind: ThreadPoolExecutor(threads, thread_name_prefix=f"docker-{kind}")
            for kind, threads in LANES.items()
        }

    async def __call__(
        self, fn: Callable[..., T], *args: Any, kind: Kind = "read", **kwargs: Any
    ) -> T:
        loop = asyncio.get_running_loop()
        name = getattr(fn, "__name__", "call")
        began: asyncio.Future[None] = loop.create_future()

        def run() -> T:
            loop.call_soon_threadsafe(_settle, began)
            return fn(*args, **kwargs)

        work = loop.run_in_executor(self._lanes[kind], run)
        try:
            found = await self._answer(work, began, name)
        except Exception as exc:
            DOCKER_ERRORS.labels(name, type(exc).__name__).inc()
            if unreachable(exc):
                self.available = False
            raise
        self.available = True
        return found

    async def _answer(self, work: asyncio.Future[T], began: asyncio.Future[None], name: str) -> T:
        """The call's result once a thread of its lane took it (waiting for that has no
        timeout: a thousand stops queued would otherwise time out), within the timeout.
        Not asyncio.wait_for: on Python 3.11 it returns a result that arrives with its
        cancellation, and the caller's wait_for then waited for ever on a poll that went on."""
        try:
            await asyncio.wait((began, work), return_when=asyncio.FIRST_COMPLETED)
            done, _ = await asyncio.wait((work,), timeout=self.timeout_s)
        except asyncio.CancelledError:
            work.cancel()  # still queued, it never runs
            raise
        if not done:
            work.cancel()
            raise TimeoutError(
                f"the Docker Engine did not answer {name} within {self.timeout_s:g} s"
            )
        return work.result()

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.shutdown(wait=False, cancel_futures=True)


def _settle(began: asyncio.Future[None]) -> None:
    if not began.done():
        began.set_result(None)
