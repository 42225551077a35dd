"""The broker's ACLs, derived from the topic registry: each role's principal may write the
topics declared written by it (`Topic.writers`) and read those its role reads (`READS`),
in every namespace (one prefixed grant per topic kind), and nothing else. Operators (the
admin principal) and the broker itself are the broker's super users.

The grants are kept with aiokafka's own CreateAcls, DescribeAcls and DeleteAcls requests
(version 1, which Kafka 4 still serves)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest

from events.errors import BusUnavailable
from events.settings import BusSettings
from events.topics import ALL_TOPICS, READS, ROLES, group_of

TOPIC, GROUP, ANY_RESOURCE = 2, 3, 1
"""Kafka's resource types."""
PREFIXED, ANY_PATTERN = 4, 1
"""Kafka's pattern types."""
READ, WRITE, DESCRIBE, ANY_OPERATION = 3, 4, 8, 1
ALLOW, ANY_PERMISSION = 3, 1
ANY_HOST = "*"


@dataclass(frozen=True, order=True)
class Grant:
    """One ACL: `principal` may do `operation` on every topic (or consumer group, for the
    deciders' elections and the api's peers) whose name starts `prefix`."""

    principal: str
    prefix: str
    operation: int
    resource: int = TOPIC


def grants() -> frozenset[Grant]:
    """Every grant the roles need: write (and describe) what they write, read (and
    describe) what they read."""
    found = set()
    for role in ROLES:
        principal = f"User:{role}"
        for topic in ALL_TOPICS:
            prefix = f"{topic.suffix}."
            if role in topic.writers:
                found |= {Grant(principal, prefix, WRITE), Grant(principal, prefix, DESCRIBE)}
            if topic in READS[role]:
                found |= {Grant(principal, prefix, READ), Grant(principal, prefix, DESCRIBE)}
        group = group_of(role, "")
        if group is not None:
            found |= {Grant(principal, group, op, GROUP) for op in (READ, DESCRIBE)}
    return frozenset(found)


def digest(wanted: frozenset[Grant]) -> str:
    """A short fingerprint of a set of grants: a broker that was given it needs nothing."""
    text = "\n".join(f"{g.principal} {g.prefix} {g.operation} {g.resource}" for g in sorted(wanted))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def apply_grants(settings: BusSettings, wanted: frozenset[Grant]) -> None:
    """Make the roles' ACLs exactly `wanted`: missing grants are created, grants to a role
    that are no longer declared are deleted. Needs a super user's settings."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        await admin.start()
        found = await _described(admin)
        stale = {g for g in found if g.principal in {f"User:{r}" for r in ROLES}} - wanted
        for deleted in await asyncio.gather(
            *(_send(admin, _acl(DeleteAclsRequest, g)) for g in stale)
        ):
            _check([(code, message) for code, message, _ in deleted.filter_responses])
        for created in await asyncio.gather(
            *(_send(admin, _acl(CreateAclsRequest, g)) for g in sorted(wanted - found))
        ):
            _check(created.creation_responses)
    finally:
        await admin.close()


async def current_grants(settings: BusSettings) -> frozenset[Grant]:
    """The allowing prefixed topic grants the cluster holds (a super user's settings)."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        await admin.start()
        return frozenset(await _described(admin))
    finally:
        await admin.close()


async def _described(admin: AIOKafkaAdminClient) -> set[Grant]:
    request = DescribeAclsRequest(
        ANY_RESOURCE, None, ANY_PATTERN, None, None, ANY_OPERATION, ANY_PERMISSION
    )
    response = await _send(admin, request)
    if response.error_code != 0:
        raise BusUnavailable(f"Kafka did not list its ACLs: {response.error_message}")
    return {
        Grant(principal, name, operation, kind)
        for kind, name, pattern, acls in response.resources
        if kind in (TOPIC, GROUP) and pattern == PREFIXED
        for principal, host, operation, permission in acls
        if host == ANY_HOST and permission == ALLOW
    }


def _check(results: list[tuple[int, str | None]]) -> None:
    for code, message in results:
        if code != 0:
            raise BusUnavailable(f"Kafka refused an ACL change: error {code} {message}")


def _acl(request: Any, grant: Grant) -> Any:
    return request(
        grant.resource, grant.prefix, PREFIXED, grant.principal, ANY_HOST, grant.operation, ALLOW
    )


async def _send(admin: AIOKafkaAdminClient, request: Any) -> Any:
    return await admin._send_request(request)
