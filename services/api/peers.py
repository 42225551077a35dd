"""The api instances find each other through Kafka: each is a member of the api's consumer
group (`peer_group`), whose assignor tells every member the whole membership and each
member's relay URL. From it every instance takes its share of each replica's concurrency
limit (`services.api.shares`).

A membership holds only while the coordinator is sure to keep this instance: a share is
used until a session (less a margin) after the last heartbeat the coordinator accepted,
so a paused or cut-off instance stops using it before the group gives it to another. On
a rebalance an instance drops its shares first, then waits (up to `handoff_s`) for its
calls on limited replicas to end before it rejoins: the next owners start only after."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from prometheus_client import Gauge

from events.settings import BusSettings
from events.topics import peer_group
from services.api.routing import RouteTable
from services.api.shares import Membership
from services.common.groups import generation, group_consumer, stay_member
from services.common.logs import StructLog

PEERS = Gauge("shoal_api_peers", "api instances sharing the replicas' limits", ["instance"])
LEASE_SHARE = 0.8
"""The part of a session after an accepted heartbeat during which shares are used."""
MOST_MEMBERS = 64
LONGEST_URL = 256


class ApiPeers:
    def __init__(
        self,
        bus: BusSettings,
        *,
        instance: str,
        url: str,
        routes: RouteTable,
        log: StructLog,
        clock: Callable[[], float],
        woken: Callable[[], None],
        session_s: float = 2.5,
        handoff_s: float = 3.0,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        self.bus, self.instance, self.url, self.routes = bus, instance, url, routes
        self.log, self.clock, self.woken, self.beat = log, clock, woken, beat
        self.session_s, self.handoff_s = session_s, handoff_s
        self.offered: dict[str, str] = {}
        """The membership the last assignment told of."""
        routes.reshare(Membership(instance), until=float("-inf"))

    @property
    def lease_s(self) -> float:
        return self.session_s * LEASE_SHARE

    def joined(self, generation_: int) -> None:
        membership = Membership(self.instance, dict(self.offered), generation_)
        if self.instance not in membership.urls:
            self.log.warning("the api's group left this instance out", generation=generation_)
            return
        self.routes.reshare(membership, until=self.clock() + self.lease_s)
        PEERS.labels(self.instance).set(len(membership.urls))
        self.log.info("api peers", generation=generation_, members=list(membership.members))
        self.woken()

    def accepted(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` was accepted: the shares hold a while longer."""
        if self.routes.membership is not None and self.routes.membership.urls:
            self.routes.shares_until = max(self.routes.shares_until, sent_at + self.lease_s)

    async def left(self) -> None:
        """Shares dropped, then this instance's calls on limited replicas drained."""
        self.routes.reshare(Membership(self.instance), until=float("-inf"))
        PEERS.labels(self.instance).set(0)
        deadline = self.clock() + self.handoff_s
        while self.routes.limited_outstanding() and self.clock() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # counted by the proxy in many places: a bounded poll

    async def run(self, stop: asyncio.Event) -> None:
        """Be a member until `stop`; leaving hands the shares on at once."""
        consumer = group_consumer(
            self.bus,
            group=peer_group("api", self.bus.namespace),
            client_id=f"api-{self.instance}",
            session_s=self.session_s,
            assignor=_share_all(self),
        )
        try:
            await stay_member(
                consumer,
                _Listener(self, consumer),
                bus=self.bus,
                stop=stop,
                beat=self.beat,
                accepted=self.accepted,
                clock=self.clock,
            )
        finally:
            await self.left()
            await consumer.stop()


def _share_all(owner: ApiPeers) -> type[AbstractPartitionAssignor]:
    """An assignor that tells every member the whole membership: each says its name and
    URL, and the leader of the group hands the list of them to all."""

    class ShareAll(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "shoal-api-peers"
        version = 0

        @classmethod
        def metadata(cls, topics: Any) -> ConsumerProtocolMemberMetadata:
            said = json.dumps({"instance": owner.instance, "url": owner.url}).encode()
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), said)

        @classmethod
        def assign(cls, cluster: Any, members: Any) -> dict[str, ConsumerProtocolMemberAssignment]:
            urls = members_of(m.user_data for m in members.values())
            told = json.dumps(urls, sort_keys=True).encode()
            return {m: ConsumerProtocolMemberAssignment(cls.version, [], told) for m in members}

        @classmethod
        def on_assignment(cls, assignment: Any) -> None:
            owner.offered = told_members(assignment.user_data)

    return ShareAll


def members_of(said: Any) -> dict[str, str]:
    """Each member's name and URL from what the members said (what is malformed is left
    out; at most MOST_MEMBERS)."""
    found: dict[str, str] = {}
    for data in said:
        try:
            member = json.loads(data or b"{}")
            instance, url = member["instance"], member["url"]
        except (ValueError, KeyError, TypeError):
            continue
        if _fits(instance, url) and len(found) < MOST_MEMBERS:
            found[instance] = url
    return found


def told_members(data: bytes | None) -> dict[str, str]:
    """The membership the group's leader told (empty when malformed)."""
    try:
        told = json.loads(data or b"{}")
    except ValueError:
        return {}
    if not isinstance(told, dict):
        return {}
    return members_of(json.dumps({"instance": k, "url": v}).encode() for k, v in told.items())


def _fits(instance: Any, url: Any) -> bool:
    return (
        isinstance(instance, str)
        and isinstance(url, str)
        and 0 < len(instance) <= LONGEST_URL
        and url.startswith("http://")
        and len(url) <= LONGEST_URL
    )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: ApiPeers, consumer: AIOKafkaConsumer) -> None:
        self.owner, self.consumer = owner, consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.left()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner.joined(generation(self.consumer))
