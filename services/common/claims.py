"""A new leader claims every subject it may decide about before its first decision
(`events.payloads.claims`), so that a deposed leader of its role is refused about each of
them, not only about those its successor has decided something of. A subject that appears
later (a node joins) is claimed at the next round, before any decision about it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.structs import RecordMetadata

from events.bus import EventProducer
from events.types import Claim, CommandsClaimed, NodeClaimed, ScaleClaimed

ClaimKind = type[CommandsClaimed] | type[NodeClaimed] | type[ScaleClaimed]
Subjects = Mapping[ClaimKind, Set[str]]
"""What a decider decides about, by the kind of claim that fences it: node ids, function
names."""
NONE: Callable[[], Subjects] = dict


def claim(kind: ClaimKind, subject: str, epoch: int) -> Claim:
    if kind is ScaleClaimed:
        return ScaleClaimed(function=subject, epoch=epoch)
    return kind(node=subject, epoch=epoch)  # type: ignore[call-arg]


@dataclass
class Claims:
    """What this instance has claimed while leading with `epoch`."""

    epoch: int = 0
    made: dict[ClaimKind, set[str]] = field(default_factory=dict)
    unread: dict[TopicPartition, int] = field(default_factory=dict)
    """Where the claims made stand on the log: the leader decides only once it has read
    that far, so that what its world refuses as a deposed leader's is what every reader
    refuses (what stood before a claim, the node obeyed)."""

    def due(self, epoch: int, subjects: Subjects) -> list[Claim]:
        """The claims not made yet at this epoch: every subject's at a new epoch. Subjects
        no longer there are forgotten, so what is kept stays bounded."""
        if epoch != self.epoch:
            self.epoch, self.made = epoch, {}
        due: list[Claim] = []
        for kind, names in subjects.items():
            made = self.made.setdefault(kind, set())
            if len(made) == len(names) and made.issuperset(names):
                continue  # every round's case: nothing new, nothing gone
            new = names - made
            if len(made) + len(new) != len(names):  # some made are gone
                made.intersection_update(names)
            due.extend(claim(kind, name, epoch) for name in sorted(new))
        return due

    def note(self, claims: list[Claim], where: list[RecordMetadata]) -> None:
        """The claims are on the log (acknowledged), where Kafka said."""
        for made in claims:
            self.made.setdefault(type(made), set()).add(made.key)
        for at in where:
            tp = TopicPartition(at.topic, at.partition)
            self.unread[tp] = max(self.unread.get(tp, 0), at.offset + 1)


async def make_claims(
    producer: EventProducer, claims: Claims, epoch: int, subjects: Subjects
) -> int:
    """Send the claims due and wait for the log to take them all; how many were sent. A
    failure raises (the round fails, and no decision is taken before they are made)."""
    due = claims.due(epoch, subjects)
    if due:
        acks = [await producer.send(producer.envelope(c)) for c in due]
        answers = await asyncio.gather(*acks, return_exceptions=True)
        failed = [a for a in answers if isinstance(a, BaseException)]
        if failed:
            raise failed[0]
        claims.note(due, answers)
    return len(due)
