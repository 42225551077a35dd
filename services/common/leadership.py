"""Which instance of a decider decides: Kafka's group coordinator elects it. Every instance
of a role joins the role's consumer group (`leader_group`) on the one-partition `leaders`
topic; the member the partition is assigned to leads. A dead leader's membership ends
with its session (`session_s`), one that stops leaves at once, and the coordinator hands
the partition to another member; no store but Kafka is involved.

The leader's epoch is the group's generation, raised above any epoch of its role already
on the log: every command it sends carries it, and a node refuses a command of an older
epoch than one it has seen from that role (`events.fencing`), so a deposed leader that
still runs (paused, cut off) is not obeyed once its successor has spoken.

A leader also holds a lease, as the api's instances hold their shares: it acts only until
`LEASE_SHARE` of a session after the last heartbeat (or join) the coordinator accepted,
so one that is paused or cut off stops deciding before the group can have given its role
to another, rather than when aiokafka gives its heartbeats up (about 30 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from prometheus_client import Gauge

from events.fencing import EPOCH_CEILING
from events.settings import BusSettings
from events.topics import leader_group
from services.common.groups import generation, group_consumer, stay_member
from services.common.logs import StructLog

LEASE_SHARE = 0.8
"""The part of a session after an accepted heartbeat during which a leader acts."""
LEADING = Gauge("shoal_leader", "1 while this instance leads its role", ["role", "instance"])
EPOCH = Gauge("shoal_leader_epoch", "The epoch this instance leads with", ["role", "instance"])


class Leadership:
    def __init__(
        self,
        bus: BusSettings,
        *,
        role: str,
        instance: str,
        log: StructLog,
        floor: Callable[[], int] = lambda: 0,
        session_s: float = 2.5,
        beat: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus, self.role, self.instance, self.log = bus, role, instance, log
        self.floor = floor
        """The highest epoch of this role on the log (this one leads above it)."""
        self.session_s = session_s
        self.leading = False
        self.epoch = 0
        self.assigned = False
        """Whether the last assignment gave this instance the lead (it asks to keep it)."""
        self.beat = beat
        """Said at every turn of a membership that works (an election that keeps failing
        stops saying it, and the service's /healthz fails)."""
        self.clock = clock
        self.heard = float("-inf")
        """When the last heartbeat or join the coordinator accepted was sent."""
        self.lapsed = False

    def accepted(self, sent_at: float) -> None:
        """The coordinator accepted a heartbeat (or a join) sent at `sent_at`."""
        self.heard = max(self.heard, sent_at)

    def leads(self) -> bool:
        """Whether this instance may decide now: it leads, and its lease holds."""
        if not self.leading:
            return False
        lapsed = self.clock() >= self.heard + self.session_s * LEASE_SHARE
        if lapsed != self.lapsed:
            self.lapsed = lapsed
            LEADING.labels(self.role, self.instance).set(0 if lapsed else 1)
            said = "lease lapsed; not deciding" if lapsed else "lease renewed"
            self.log.warning(said, role=self.role, epoch=self.epoch)
        return not lapsed

    def _won(self, generation: int) -> None:
        self.epoch = min(EPOCH_CEILING, max(generation, self.floor() + 1, self.epoch + 1))
        self.leading = self.assigned = True
        self.lapsed = False
        LEADING.labels(self.role, self.instance).set(1)
        EPOCH.labels(self.role, self.instance).set(self.epoch)
        self.log.info("leading", role=self.role, epoch=self.epoch)

    def _lost(self) -> None:
        if self.leading:
            self.log.info("no longer leading", role=self.role, epoch=self.epoch)
        self.leading = False
        LEADING.labels(self.role, self.instance).set(0)

    async def run(self, stop: asyncio.Event) -> None:
        """Be a member of the role's group until `stop`; leaving it hands the lead on."""
        consumer = group_consumer(
            self.bus,
            group=leader_group(self.role, self.bus.namespace),
            client_id=f"{self.role}-{self.instance}",
            session_s=self.session_s,
            assignor=_keep_leader(self),
        )
        try:
            listener = _Listener(self, consumer)
            await stay_member(
                consumer,
                listener,
                bus=self.bus,
                stop=stop,
                beat=self.beat,
                accepted=self.accepted,
                clock=self.clock,
            )
        finally:
            self._lost()
            await consumer.stop()


def _keep_leader(owner: Leadership) -> type[AbstractPartitionAssignor]:
    """An assignor that keeps the lead where it is: each member says the epoch it leads with
    (0: it does not), and the partition goes to the highest, so a member that joins (or
    wakes) does not take the lead from a live leader; with no leader, the first member."""

    class KeepLeader(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "shoal-keep-leader"
        version = 0

        @classmethod
        def metadata(cls, topics: Any) -> ConsumerProtocolMemberMetadata:
            epoch = owner.epoch if owner.assigned else 0
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), str(epoch).encode())

        @classmethod
        def assign(cls, cluster: Any, members: Any) -> dict[str, ConsumerProtocolMemberAssignment]:
            chosen = max(sorted(members), key=lambda m: _epoch_of(members[m].user_data))
            topics = sorted({t for m in members.values() for t in m.subscription})
            return {
                member: ConsumerProtocolMemberAssignment(
                    cls.version, [(t, [0]) for t in topics] if member == chosen else [], b""
                )
                for member in members
            }

        @classmethod
        def on_assignment(cls, assignment: Any) -> None:
            return None

    return KeepLeader


def _epoch_of(user_data: bytes | None) -> int:
    try:
        return int((user_data or b"0").decode())
    except ValueError:
        return 0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Leadership, consumer: AIOKafkaConsumer) -> None:
        self.owner, self.consumer = owner, consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner._lost()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if any(tp.partition == 0 for tp in assigned):
            self.owner._won(generation(self.consumer))
        else:
            self.owner.assigned = False
