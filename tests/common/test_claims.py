"""A leader's claims: every subject at a new epoch, then only the new ones; a subject no
longer there is forgotten and claimed again if it comes back."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import RecordMetadata

from events.types import CommandsClaimed, NodeClaimed, ScaleClaimed
from services.common.claims import Claims


def keys(claims: list) -> list[tuple[str, str, int]]:  # type: ignore[type-arg]
    return [(type(c).__name__, c.key, c.epoch) for c in claims]


def test_a_new_epoch_claims_every_subject_once() -> None:
    claims = Claims()
    subjects = {CommandsClaimed: {"n2", "n1"}, NodeClaimed: {"n1"}, ScaleClaimed: {"f"}}
    due = claims.due(3, subjects)
    assert keys(due) == [
        ("CommandsClaimed", "n1", 3),
        ("CommandsClaimed", "n2", 3),
        ("NodeClaimed", "n1", 3),
        ("ScaleClaimed", "f", 3),
    ]
    assert claims.due(3, subjects) == due, "not made until noted"
    claims.note(due, [])
    assert claims.due(3, subjects) == []
    assert keys(claims.due(3, {CommandsClaimed: {"n1", "n2", "n3"}})) == [
        ("CommandsClaimed", "n3", 3)
    ]
    assert len(claims.due(4, subjects)) == 4, "a new epoch claims everything again"


def test_a_subject_gone_and_back_is_claimed_again() -> None:
    claims = Claims()
    claims.note(claims.due(1, {CommandsClaimed: {"n1", "n2"}}), [])
    assert claims.due(1, {CommandsClaimed: {"n2"}}) == []
    assert claims.made[CommandsClaimed] == {"n2"}
    assert keys(claims.due(1, {CommandsClaimed: {"n1", "n2"}})) == [("CommandsClaimed", "n1", 1)]


def test_the_claims_stand_where_kafka_put_them_until_read_back() -> None:
    claims = Claims()
    due = claims.due(2, {CommandsClaimed: {"n1", "n2"}})
    where = [RecordMetadata("t", 3, TopicPartition("t", 3), 41, 0, None, -1)] * 2
    where.append(RecordMetadata("t", 3, TopicPartition("t", 3), 7, 0, None, -1))
    claims.note(due, where)
    assert claims.unread == {TopicPartition("t", 3): 42}
