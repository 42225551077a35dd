"""One node's agent: carries out its commands on a runtime and publishes what happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

import aiohttp
from prometheus_client import Counter, Histogram

from events.bounds import within_bounds
from events.bus import EventProducer
from events.envelope import Envelope
from events.fencing import role_of
from events.idempotency import SeenIds
from events.lifecycle import ReplicaState, transition
from events.projections.world import World
from events.types import (
    DrainReplica,
    NodeCapacity,
    NodeJoined,
    Payload,
    ReplicaDraining,
    ReplicaEvent,
    ReplicaFailed,
    ReplicaReady,
    ReplicaStarting,
    ReplicaStopped,
    StartReplica,
    StopReplica,
)
from services.common.clock import Clock
from services.common.logs import StructLog
from services.node_agent.converge import converge
from services.node_agent.leaving import stop_surely, wait_drained
from services.node_agent.ports import PortAllocator, PortsExhausted
from services.node_agent.probe import wait_until_ready
from services.node_agent.reconcile import plan_reconcile
from services.node_agent.replica import Replica, exit_reason
from services.node_agent.runtime import Exit, ReplicaRuntime, Running, RuntimeStartError
from services.node_agent.settings import Settings
from services.node_agent.startup import not_ready, settled

Cause = Literal["function", "platform"]

E = TypeVar("E", bound=ReplicaEvent)

FENCED = Counter(
    "shoal_node_commands_fenced_total",
    "Commands refused because their role's leader had changed (a newer epoch was seen)",
    ["role"],
)


START_SECONDS = Histogram(
    "shoal_node_start_seconds",
    "From a start command to the replica ready (container start plus readiness probe)",
    buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60),
)


class NodeAgent:
    def __init__(
        self,
        *,
        node_id: str,
        settings: Settings,
        runtime: ReplicaRuntime,
        producer: EventProducer,
        http: aiohttp.ClientSession,
        log: StructLog,
        world: World,
        clock: Clock,
    ) -> None:
        self.node_id = node_id
        self.settings = settings
        self.runtime = runtime
        self.producer = producer
        self.http = http
        self.log = log
        self.world = world
        """The shared projections of this process's nodes' commands."""
        self.clock = clock
        self.replicas: dict[str, Replica] = {}
        self.done = SeenIds(50_000)
        self.commands: dict[str, tuple[StartReplica, str]] = {}
        """The start commands of replicas not done with yet (with their events' ids)."""
        self.leaves: dict[str, tuple[DrainReplica | StopReplica, str]] = {}
        """The drain or stop commanded for each of them, if any."""
        self.ports = PortAllocator(settings.port_first, settings.port_last)
        self.heartbeats = 0
        self.runtime_said = True
        """Whether the container engine was reachable, as last said in an event."""

    @property
    def capacity(self) -> NodeCapacity:
        return NodeCapacity(
            cpus=round(self.settings.cpus * self.settings.cpu_overcommit, 3),
            memory_mb=self.settings.memory_mb,
            max_replicas=self.settings.max_replicas,
        )

    async def publish(self, payload: Payload, cause: str | None) -> None:
        await self.producer.publish(payload, causation_id=cause)

    def _event(self, kind: type[E], command: StartReplica | Running, **extra: Any) -> E:
        """A replica event of this node about the replica a command or container names,
        its texts cut to what readers accept."""
        event = kind(
            function=command.function,
            revision=command.revision,
            replica_id=command.replica_id,
            node=self.node_id,
            node_generation=command.node_generation,
            **extra,
        )
        return within_bounds(event)

    async def join(self) -> None:
        await self.publish(
            NodeJoined(
                node=self.node_id,
                address=self.settings.address,
                runtime=self.settings.runtime,
                capacity=self.capacity,
            ),
            None,
        )

    def remember(self, envelope: Envelope) -> None:
        """Fold a command for this node, or news of it (a loss): nothing is done yet. A
        command the fold refuses (seen before, or a deposed leader's) is not obeyed."""
        again = envelope.id in self.world.seen
        if self.world.apply(envelope, self.clock.now()) is None:
            if not again and isinstance(envelope.data, StartReplica | DrainReplica | StopReplica):
                FENCED.labels(role_of(envelope.source)).inc()
                self.log.warning(
                    "command of a deposed leader refused",
                    event_id=envelope.id,
                    source=envelope.source,
                    epoch=envelope.data.epoch,
                )
            return
        event = envelope.data
        if isinstance(event, StartReplica):
            self.commands.setdefault(event.replica_id, (event, envelope.id))
        elif isinstance(event, DrainReplica | StopReplica):
            self.leaves[event.replica_id] = (event, envelope.id)

    def wanted(self) -> dict[str, StartReplica]:
        """The replicas the log still wants here (commanded, not told to leave, not ended)."""
        found = {}
        for replica_id, (command, _) in self.commands.items():
            view = self.world.replicas.get(replica_id)
            if view is not None and view.live and not view.leaving:
                found[replica_id] = command
        return found

    def converge(self) -> None:
        """Act on what the folded log says: start, drain and stop."""
        steps = converge(
            commands=self.commands,
            leaves=self.leaves,
            view=self.world.replicas.get,
            tracked=self.replicas,
            done=self.done,
        )
        for replica_id in steps.forget:
            self.commands.pop(replica_id, None)
            self.leaves.pop(replica_id, None)
        for command, cause in steps.starts:
            self._start(command, cause)
        for replica_id, drain, cause in steps.drains:
            replica = self.replicas[replica_id]
            replica.leaving = True
            self._spawn(replica, self._drain(replica, drain.drain_s, drain.reason, cause))
        for replica_id, reason, why in steps.stops:
            replica = self.replicas[replica_id]
            replica.stopping = True
            self._spawn(replica, self._stop(replica, reason, why))

    def _spawn(self, replica: Replica, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        replica.tasks.add(task)
        task.add_done_callback(replica.tasks.discard)

    def _start(self, command: StartReplica, cause: str) -> None:
        if command.replica_id in self.replicas or command.replica_id in self.done:
            self.log.info(
                "duplicate start ignored",
                replica=command.replica_id,
                function=command.function,
                event_id=cause,
            )
            return
        try:
            port = self._free_port()
        except PortsExhausted as exc:
            replica = Replica(command=command, port=0, commanded_at=self.clock.now())
            self.replicas[command.replica_id] = replica
            self._spawn(replica, self._fail(replica, str(exc), cause, by="platform"))
            return
        replica = Replica(command=command, port=port, commanded_at=self.clock.now())
        self.replicas[command.replica_id] = replica
        self._spawn(replica, self._bring_up(replica, cause))

    def _free_port(self) -> int:
        """The next port of the range that nothing else on the host holds."""
        for _ in range(self.ports.size):
            port = self.ports.allocate()
            if self.runtime.port_is_free(port):
                return port
            self.ports.release(port)
        raise PortsExhausted(
            f"every port {self.ports.first}-{self.ports.last} is taken on this host"
        )

    async def _bring_up(self, replica: Replica, cause: str) -> None:
        # Not awaited: Kafka keeps per-partition order, so Starting still lands before Ready,
        # and the container start does not wait for the broker's acknowledgement.
        starting = await self.producer.send(
            self.producer.envelope(
                self._event(ReplicaStarting, replica.command), causation_id=cause
            )
        )
        try:
            replica.endpoint = await self.runtime.start(replica.command, port=replica.port)
        except Exception as exc:
            if replica.state is ReplicaState.STARTING:
                by: Cause = "function" if isinstance(exc, RuntimeStartError) else "platform"
                await self._fail(replica, f"could not start: {exc}", cause, by=by)
            return
        finally:
            await starting
        await self._await_ready(replica, cause)

    async def _await_ready(self, replica: Replica, cause: str | None) -> None:
        spec = replica.command.spec
        ready = await wait_until_ready(
            self.http,
            replica.endpoint,
            spec.readiness_path,
            timeout_s=replica.command.ready_timeout_s,
            interval_s=self.settings.probe_interval_s,
            still_wanted=lambda: replica.state is ReplicaState.STARTING,
            clock=self.clock,
        )
        if replica.state is not ReplicaState.STARTING:
            return
        if not ready:
            await self._fail(replica, not_ready(replica), cause)
            return
        if (why := await settled(self.runtime, replica)) is not None:
            await self._fail(replica, why, cause, by="platform")
            return
        replica.state = transition(replica.state, ReplicaState.READY)
        START_SECONDS.observe(self.clock.now() - replica.commanded_at)
        await self.publish(
            self._event(
                ReplicaReady,
                replica.command,
                endpoint=replica.endpoint,
                concurrency_limit=spec.concurrency_limit,
            ),
            cause,
        )
        self.log.info(
            "replica ready",
            replica=replica.replica_id,
            function=replica.command.function,
            endpoint=replica.endpoint,
            event_id=cause,
        )

    async def _drain(self, replica: Replica, drain_s: float, reason: str, cause: str) -> None:
        replica.state = transition(replica.state, ReplicaState.DRAINING)
        await self.publish(self._event(ReplicaDraining, replica.command), cause)
        min_s, replica_id = self.settings.min_drain_s, replica.replica_id
        await wait_drained(self.runtime, replica_id, drain_s=drain_s, min_s=min_s, clock=self.clock)
        if replica.state is ReplicaState.DRAINING:
            await self._stop(replica, reason or "drained", cause)

    async def _stop(self, replica: Replica, reason: str, cause: str | None) -> None:
        replica.stopping = True
        replica.state = transition(replica.state, ReplicaState.STOPPED)
        await stop_surely(self.runtime, replica, self.log)
        self._forget(replica)
        await self.publish(
            self._event(ReplicaStopped, replica.command, reason=reason),
            cause,
        )

    async def _fail(
        self,
        replica: Replica,
        reason: str,
        cause: str | None,
        exit_: Exit | None = None,
        *,
        by: Cause = "function",
    ) -> None:
        replica.state = transition(replica.state, ReplicaState.FAILED)
        self.log.warning(
            "replica failed",
            replica=replica.replica_id,
            function=replica.command.function,
            reason=reason,
            event_id=cause,
        )
        await self.publish(
            self._event(
                ReplicaFailed,
                replica.command,
                reason=reason,
                exit_code=exit_.exit_code if exit_ else None,
                oom_killed=exit_.oom_killed if exit_ else False,
                last_logs=exit_.last_logs if exit_ else [],
                cause=by,
            ),
            cause,
        )
        if replica.port:
            with contextlib.suppress(Exception):
                await self.runtime.stop(replica.replica_id, timeout_s=0)
        self._forget(replica)

    def _forget(self, replica: Replica) -> None:
        self.replicas.pop(replica.replica_id, None)
        self.commands.pop(replica.replica_id, None)
        self.leaves.pop(replica.replica_id, None)
        self.done.add(replica.replica_id)
        if replica.port:
            self.ports.release(replica.port)

    async def on_exit(self, exit_: Exit) -> None:
        replica = self.replicas.get(exit_.replica_id)
        if replica is None or replica.state not in (ReplicaState.STARTING, ReplicaState.READY):
            return
        by: Cause = "platform" if exit_.removed or exit_.killed else "function"
        await self._fail(replica, exit_reason(exit_), None, exit_, by=by)

    async def reconcile(self) -> None:
        """Adopt wanted containers, remove unwanted ones, report the wanted that are gone."""
        plan = plan_reconcile(
            await self.runtime.owned(), self.wanted(), tracked=self.replicas, done=self.done
        )
        for running, command in plan.adopt:
            replica = Replica(
                command=command,
                port=running.port,
                commanded_at=self.clock.now(),
                endpoint=self.runtime.endpoint_for(running.port),
            )
            self.ports.reserve(running.port)
            self.replicas[running.replica_id] = replica
            self.log.info("adopting replica", replica=running.replica_id, function=command.function)
            self._spawn(replica, self._await_ready(replica, None))
        await asyncio.gather(*(self._remove(running, wanted) for running, wanted in plan.remove))
        for command in plan.gone:
            self.done.add(command.replica_id)
            self.commands.pop(command.replica_id, None)
            reason = "container gone while the agent was away"
            failed = self._event(ReplicaFailed, command, reason=reason, cause="platform")
            await self.publish(failed, None)

    async def _remove(self, running: Running, wanted: StartReplica | None) -> None:
        """Stop a container no command wants here (all of them at once, each within its
        grace), and say so."""
        await self.runtime.stop(running.replica_id, timeout_s=self.settings.stop_timeout_s)
        self.done.add(running.replica_id)
        if wanted is None:
            reason = "orphan removed: no command wants it"
            await self.publish(self._event(ReplicaStopped, running, reason=reason), None)
        else:
            reason = "container stopped while the agent was away"
            failed = self._event(ReplicaFailed, running, reason=reason, cause="platform")
            await self.publish(failed, None)

    async def after_runtime_restart(self) -> list[str]:
        """The runtime reconnected (e.g. dockerd restarted): fail what no longer runs (the
        platform's failure, not the functions'); returns those replicas."""
        running = {r.replica_id for r in await self.runtime.owned() if r.running}
        lost = []
        for replica in list(self.replicas.values()):
            gone = replica.replica_id not in running
            if gone and replica.state in (ReplicaState.STARTING, ReplicaState.READY):
                lost.append(replica.replica_id)
                reason = "container lost while the container engine restarted"
                await self._fail(replica, reason, None, by="platform")
        return lost

    async def close(self) -> None:
        tasks = [t for r in self.replicas.values() for t in r.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.runtime.close()
