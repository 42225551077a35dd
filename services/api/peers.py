"""The api instances find each other through Kafka: each is a member of the api's consumer
group (`peer_group`), whose assignor tells every member the whole membership and each
member's relay URL. From it every instance takes its share of each replica's concurrency
limit (`services.api.shares`).

Members are named by their instance name and their Kafka member id (two instances given
one name stay two members). A membership holds only while the coordinator is sure to
keep this instance: a share is used from the first heartbeat the coordinator accepts
after the join until a session (less a margin) after the last one it accepted, so a
paused or cut-off instance takes no new call on it once the group may give it to
another. On a rebalance an instance drops its shares first, then waits (up to
`handoff_s`, within the group's rebalance timeout) for its calls on limited replicas to
end before it rejoins: the next owners start only after."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from prometheus_client import Gauge

from events.settings import BusSettings
from events.topics import peer_group
from services.api.relay import peer_address
from services.api.routing import RouteTable
from services.api.shares import Membership
from services.common.groups import generation, group_consumer, member_id, stay_member
from services.common.logs import StructLog

PEERS = Gauge("shoal_api_peers", "api instances sharing the replicas' limits", ["instance"])
LEASE_SHARE = 0.8
"""The part of a session after an accepted heartbeat during which shares are used."""
MOST_MEMBERS = 64
LONGEST_NAME = 256
LONGEST_SAID = 64 * 1024
"""What a member says of itself, or what the group's leader tells, is at most this long."""


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
        self.joined_at = float("inf")
        """When this instance last joined: heartbeats sent before do not hold its shares."""
        self.me = instance
        self.sharing = asyncio.Event()
        """Set once this instance first holds its shares (the api is ready after)."""
        routes.reshare(Membership(instance), until=float("-inf"))

    @property
    def lease_s(self) -> float:
        return self.session_s * LEASE_SHARE

    def joined(self, generation_: int, member_id: str) -> None:
        """A new membership: used once the coordinator accepts a heartbeat after it."""
        self.me = member_name(self.instance, member_id)
        membership = Membership(self.me, dict(self.offered), generation_)
        if self.me not in membership.urls:
            self.log.warning("the api's group left this instance out", generation=generation_)
            return
        self.joined_at = self.clock()
        self.routes.reshare(membership, until=float("-inf"))
        PEERS.labels(self.instance).set(len(membership.urls))
        self.log.info("api peers", generation=generation_, members=list(membership.members))
        self.woken()

    def accepted(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` was accepted: the shares hold a while longer."""
        membership = self.routes.membership
        if membership is not None and membership.urls and sent_at >= self.joined_at:
            self.routes.shares_until = max(self.routes.shares_until, sent_at + self.lease_s)
            if not self.sharing.is_set():
                self.sharing.set()
                self.woken()

    async def left(self) -> None:
        """Shares dropped, then this instance's calls on limited replicas drained."""
        self.joined_at = float("inf")
        self.routes.reshare(Membership(self.me), until=float("-inf"))
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
            rebalance_s=self.session_s + self.handoff_s + 1.0,
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
            urls = members_of((m, said.user_data) for m, said in sorted(members.items()))
            told = json.dumps(urls, sort_keys=True).encode()
            return {m: ConsumerProtocolMemberAssignment(cls.version, [], told) for m in members}

        @classmethod
        def on_assignment(cls, assignment: Any) -> None:
            owner.offered = told_members(assignment.user_data)

    return ShareAll


def member_name(instance: str, member_id: str) -> str:
    """A member's name in the membership: its instance's, and its Kafka member id."""
    return f"{instance}#{member_id}"


def _parsed(data: bytes | None) -> Any:
    if data is None or len(data) > LONGEST_SAID:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def members_of(said: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Each member's name and URL from what the members (by Kafka member id) said of
    themselves; what is malformed is left out, and at most MOST_MEMBERS are kept."""
    found: dict[str, str] = {}
    for kafka_id, data in said:
        member = _parsed(data)
        if not isinstance(member, dict):
            continue
        instance, url = member.get("instance"), _address(member.get("url"))
        if _fits(instance) and _fits(kafka_id) and url:
            if len(found) < MOST_MEMBERS:
                found[member_name(instance, kafka_id)] = url
    return found


def told_members(data: bytes | None) -> dict[str, str]:
    """The membership the group's leader told (empty when malformed)."""
    told = _parsed(data)
    if not isinstance(told, dict) or len(told) > MOST_MEMBERS:
        return {}
    found = {name: _address(url) for name, url in told.items() if _fits(name)}
    return {name: url for name, url in found.items() if url}


def _fits(name: Any) -> TypeGuard[str]:
    return isinstance(name, str) and 0 < len(name) <= LONGEST_NAME


def _address(url: Any) -> str | None:
    if not isinstance(url, str) or len(url) > LONGEST_NAME:
        return None
    try:
        return peer_address(url)
    except ValueError:
        return None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: ApiPeers, consumer: AIOKafkaConsumer) -> None:
        self.owner, self.consumer = owner, consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.left()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner.joined(generation(self.consumer), member_id(self.consumer))
