"""Replicas as real containers of the local Docker Engine (the docker SDK, in threads)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from events.spec import spec_identity
from events.types import LAST_LOG_LINES, StartReplica
from services.common.labels import LABEL_NODE, LABEL_PORT, LABEL_REPLICA
from services.node_agent.connections import ConnectionTables, Listener, listener_of
from services.node_agent.docker_calls import LANES, DockerCalls, ensure_replica_network
from services.node_agent.engine_events import DeathNotes, event_filters, last_lines, read_events
from services.node_agent.runtime import Exit, Resync, Running, RuntimeStartError
from services.node_agent.sandbox import (
    ImageFacts,
    Sandbox,
    container_name,
    container_options,
    cpu_quota,
    run_as,
    running_of,
)
from services.node_agent.secret_files import SecretFiles, secrets_dir_of
from services.node_agent.usage import CpuSample, Usage, cpu_sample, memory_used, usage_between

log = logging.getLogger("shoal.node.docker")
KILL_WAIT_S = 5.0
"""How long a stop waits for the death of what SIGKILL was sent to, before removing it."""


class DockerRuntime:
    def __init__(
        self,
        *,
        node_id: str,
        address: str,
        network: str,
        sandbox: Sandbox | None = None,
        secret_files: SecretFiles | None = None,
        call_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self.secret_files = secret_files or SecretFiles(secrets_dir_of(node_id), None)
        self.sandbox = sandbox or Sandbox()
        self._network_ready = False
        self._network_lock = asyncio.Lock()
        self._deaths = DeathNotes()
        self.address = address
        self.network = network
        self.call_timeout_s = call_timeout_s
        self._client = docker.from_env(
            timeout=int(call_timeout_s), max_pool_size=sum(LANES.values()) + 2
        )
        self._call = DockerCalls(call_timeout_s)
        self._dying: dict[str, asyncio.Future[None]] = {}
        """Replicas told to stop: the events stream says here when each died."""
        self._streamed = False
        self._cpu: dict[str, CpuSample] = {}
        self._listeners: dict[str, Listener] = {}
        self._tables = ConnectionTables(clock)
        self._closed = threading.Event()
        self._stream: Any = None

    @property
    def available(self) -> bool:
        """Whether the engine answered the last call (False from a refused connection until
        any call succeeds)."""
        return self._call.available

    async def start(self, command: StartReplica, *, port: int) -> str:
        """Create and start the replica's container, boxed in (see `sandbox`); an image
        that is not on the node fails at once: the engine is never asked to pull."""
        image = await self._image(command.spec.image)
        if self.network != "host":
            await self._ensure_network()
        try:
            secrets_dir = None
            if command.secrets:
                user, holder = run_as(image.user), spec_identity(command.spec)
                secrets_dir = self.secret_files.write(
                    command.replica_id, command.secrets, user, holder
                )
            options = container_options(
                command,
                port=port,
                node_id=self.node_id,
                address=self.address,
                network=self.network,
                image=image,
                sandbox=self.sandbox,
                secrets_dir=secrets_dir,
            )
            await self._create_and_start(options, port)
        except BaseException:
            self.secret_files.remove(command.replica_id)
            raise
        return self.endpoint_for(port)

    async def _create_and_start(self, options: dict[str, Any], port: int) -> None:
        container = await self._create(options, port)
        if container is None:
            return
        try:
            await self._call(container.start, kind="start")
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self._call(container.remove, force=True, v=True, kind="stop")
            if isinstance(exc, APIError):
                raise RuntimeStartError(f"docker could not start it: {exc.explanation}") from exc
            raise

    async def _create(self, options: dict[str, Any], port: int) -> Any:
        """The new container; None when an earlier try of the same command already runs
        it on the same port. A leftover of a failed try is removed and made again."""
        for _ in range(2):
            try:
                return await self._call(self._client.containers.create, kind="create", **options)
            except APIError as exc:
                if exc.status_code != 409:
                    self._network_ready = False  # the next start looks at the network again
                    raise RuntimeStartError(
                        f"docker refused to create it: {exc.explanation}"
                    ) from exc
            existing = await self._call(self._client.containers.get, options["name"])
            if existing.status == "running" and existing.labels.get(LABEL_PORT) == str(port):
                return None
            await self._call(existing.remove, force=True, v=True, kind="stop")
        raise RuntimeStartError(f"a container named {options['name']} keeps coming back")

    async def _ensure_network(self) -> None:
        """The replicas' bridge (see `ensure_replica_network`), looked at once per engine."""
        async with self._network_lock:  # concurrent first starts would each make one
            if not self._network_ready:
                name, labels = self.sandbox.network_name, {LABEL_NODE: self.node_id}
                await self._call(ensure_replica_network, self._client, name, labels, kind="create")
                self._network_ready = True

    async def _image(self, reference: str) -> ImageFacts:
        """The image as the node has it now (asked at every start: a tag may move)."""
        try:
            found = await self._call(self._client.images.get, reference, kind="create")
        except ImageNotFound as exc:
            raise self._no_image(reference) from exc
        return ImageFacts.of(found.attrs)

    def _no_image(self, image: str) -> RuntimeStartError:
        return RuntimeStartError(
            f"image not found: {image} is not on node {self.node_id}; Shoal never pulls "
            "(build or load the image on the node first)"
        )

    def endpoint_for(self, port: int) -> str:
        return f"http://{self.address}:{port}"

    def port_is_free(self, port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    async def stop(self, replica_id: str, *, timeout_s: float) -> None:
        """SIGTERM (to the container's init, which passes it on), the wait for its death
        from the events stream (holding no thread), then removal, which kills what still
        runs past `timeout_s`."""
        self._cpu.pop(replica_id, None)
        self._listeners.pop(replica_id, None)
        name = container_name(replica_id)
        api = self._client.api
        try:
            if timeout_s > 0:
                await self._terminate(replica_id, name, timeout_s)
            await self._call(api.remove_container, name, force=True, v=True, kind="stop")
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code not in (404, 409):
                raise
        finally:
            self.secret_files.remove(replica_id)

    async def _terminate(self, replica_id: str, name: str, grace_s: float) -> None:
        """SIGTERM, and past the grace SIGKILL, each followed by the wait for the death,
        which holds no thread (the removal after it is then quick)."""
        died = self._dying[replica_id] = asyncio.get_running_loop().create_future()
        try:
            for signal, wait_s in (("SIGTERM", grace_s), ("SIGKILL", KILL_WAIT_S)):
                try:
                    await self._call(self._client.api.kill, name, signal=signal, kind="stop")
                except APIError as exc:
                    if exc.status_code == 409:  # not running: nothing to wait for
                        return
                    raise
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._death(name, died), wait_s)
                if died.done():
                    return
        finally:
            self._dying.pop(replica_id, None)

    async def _death(self, name: str, died: asyncio.Future[None]) -> None:
        """Until the container is dead: told by the events stream, or, while no stream
        runs (the engine reconnecting, a runtime used alone), seen by asking now and then."""
        pause = 0.05
        while not died.done():
            if self._stream is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(died), 1.0)
                continue
            found = await self._call(self._client.api.inspect_container, name)
            if not found["State"]["Running"]:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def owned(self) -> list[Running]:
        containers = await self._call(
            self._client.containers.list,
            all=True,
            filters={"label": f"{LABEL_NODE}={self.node_id}"},
        )
        owned = []
        for container in containers:
            found = running_of(container.labels, container.status)
            if found is None:
                log.warning(
                    "container with partial shoal labels",
                    extra={"fields": {"container": container.name}},
                )
            else:
                owned.append(found)
        self.secret_files.sweep({r.replica_id for r in owned})
        return owned

    async def exits(self) -> AsyncIterator[Exit | Resync]:
        """Container deaths from the Docker events stream; reconnects with back-off. Every
        stream after this runtime's first begins with a Resync: deaths may have been missed."""
        try:
            while not self._closed.is_set():
                if self._streamed:
                    yield Resync()
                self._streamed = True
                async for exit_ in self._one_stream():
                    yield exit_
                if self._closed.is_set():
                    return
                await self._await_engine()
        finally:
            self._close_stream()

    async def _one_stream(self) -> AsyncIterator[Exit]:
        """Exits from one events stream (its own queue), until it ends or fails."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        try:
            filters = event_filters(self.node_id)
            events = await self._call(self._client.events, decode=True, filters=filters)
        except Exception:
            await asyncio.sleep(0.5)  # the caller waits for the engine, then tries again
            return
        self._stream = events
        reader = threading.Thread(
            target=read_events, args=(events, loop, queue), name="docker-events", daemon=True
        )
        reader.start()
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                return
            exit_ = await self._exit_of(item)
            if exit_ is not None:
                yield exit_

    async def _await_engine(self) -> None:
        """Whatever ended the stream (a dead daemon raises requests' ConnectionError, not a
        DockerException), wait for the engine with back-off, for as long as it takes."""
        self._close_stream()
        self._call.available = False
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=0.2, max=5),
        ):
            with attempt:
                await self._call(self._client.ping)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    async def _exit_of(self, event: dict[str, Any]) -> Exit | None:
        attributes = event.get("Actor", {}).get("Attributes", {})
        replica_id = attributes.get(LABEL_REPLICA)
        if replica_id is None:
            return None
        action = event.get("Action")
        dying = self._dying.get(replica_id)
        if dying is not None:  # told to stop by this agent: its end is no news
            if action in ("die", "destroy") and not dying.done():
                dying.set_result(None)
            return None
        death = self._deaths.fold(replica_id, str(action), attributes)
        if death is None:
            return None
        if death.removed:
            return Exit(
                replica_id=replica_id, exit_code=None, oom_killed=False, last_logs=[], removed=True
            )
        oom_killed = death.oom
        if death.unexplained_kill:
            with contextlib.suppress(Exception):
                found = await self._call(self._client.api.inspect_container, event.get("id"))
                oom_killed = bool(found["State"].get("OOMKilled"))
        return Exit(
            replica_id=replica_id,
            exit_code=death.exit_code,
            oom_killed=oom_killed,
            last_logs=await self._last_logs(replica_id),
            removed=False,
            killed=death.killed,
        )

    async def _last_logs(self, replica_id: str) -> list[str]:
        """The container's last log lines (none if the engine cannot tell)."""
        name = container_name(replica_id)
        try:
            return last_lines(await self._call(self._client.api.logs, name, tail=LAST_LOG_LINES))
        except Exception:
            return []

    async def usage(self, replica_id: str, *, cpu_limit: float) -> Usage | None:
        try:
            stats = await self._call(
                self._client.api.stats,
                container_name(replica_id),
                stream=False,
                one_shot=True,
                kind="stats",
            )
        except (NotFound, APIError):
            return None
        sample = cpu_sample(stats)
        if sample is None:
            return None
        before = self._cpu.get(replica_id)
        self._cpu[replica_id] = sample
        if before is None:
            return None
        return usage_between(before, sample, cpu_limit=cpu_limit, memory=memory_used(stats))

    async def settle(self, replica_id: str, *, cpu: float) -> None:
        """Put the replica's own CPU limit in force (it may have started with the startup
        boost, of this run's setting or of an earlier one's)."""
        update, name = self._client.api.update_container, container_name(replica_id)
        await self._call(update, name, cpu_quota=cpu_quota(cpu), kind="create")

    async def connections(self, replica_id: str) -> int | None:
        """Connections open to the replica now (None: it cannot be told)."""
        listener = self._listeners.get(replica_id)
        if listener is None:
            try:
                found = await self._call(self._client.containers.get, container_name(replica_id))
            except (NotFound, APIError):
                return None
            if (listener := listener_of(found.attrs)) is None:
                return None
            self._listeners[replica_id] = listener
        return self._tables.open_to(listener)

    async def close(self) -> None:
        self._closed.set()
        self._close_stream()
        await asyncio.to_thread(self._client.close)
        self._call.close()
