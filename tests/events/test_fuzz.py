"""Fuzzing: whatever bytes a topic holds, the decoder raises only a DecodeError; whatever
valid events arrive, in whatever order, no service's handler raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.consumer import decoded
from events.envelope import Envelope, decode, encode, new_envelope
from events.errors import DecodeError
from events.topics import FUNCTIONS, SCALE, topic_of
from events.types import (
    ALL_PAYLOADS,
    FunctionDeployed,
    FunctionRolledBack,
    NodeCordoned,
    NodeLost,
    Payload,
    ScaleDecision,
    StartReplica,
)
from services.api.view import ApiView
from services.autoscaler.decide import Observed, ScalerMemory, decide_function
from services.autoscaler.service import Autoscaler
from services.autoscaler.settings import Settings as AutoscalerSettings
from services.healer.policy import disruption, drift, lost_nodes, returned_nodes, rollback_for
from services.healer.service import Healer
from services.healer.settings import Settings as HealerSettings
from services.scheduler.plan import plan_function
from services.scheduler.service import Scheduler
from services.scheduler.settings import Settings as SchedulerSettings
from tests.events.samples import sample_payloads
from tests.support.clock import FakeClock

_inspect: Any = msgspec.inspect
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HEADERS = [("content-type", b"application/cloudevents+json")]
NAMES = st.sampled_from(["f0", "f1", "n0", "n1", "r0", "r1", "hello"])


def values(kind: Any) -> st.SearchStrategy[Any]:
    """Values of an inspected msgspec type, mostly within its bounds, from a small world
    of names so that events meet each other."""
    if isinstance(kind, _inspect.Metadata):
        return values(kind.type)
    if isinstance(kind, _inspect.IntType):
        low = kind.ge if kind.ge is not None else -5
        high = kind.le if kind.le is not None else 10**6
        return st.integers(low, min(high, low + 1000))
    if isinstance(kind, _inspect.FloatType):
        low = kind.ge if kind.ge is not None else (kind.gt or 0) + 1e-6
        high = kind.le if kind.le is not None else 1e6
        return st.floats(low, high, allow_nan=False)
    if isinstance(kind, _inspect.StrType):
        if kind.pattern:
            return st.one_of(NAMES, st.from_regex(kind.pattern, fullmatch=True)).filter(
                lambda s: kind.max_length is None or len(s) <= kind.max_length
            )
        return st.one_of(NAMES, st.text(max_size=min(kind.max_length or 40, 40)))
    return _composite(kind)


def _composite(kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, _inspect.BoolType):
        return st.booleans()
    if isinstance(kind, _inspect.LiteralType):
        return st.sampled_from(kind.values)
    if isinstance(kind, _inspect.NoneType):
        return st.none()
    if isinstance(kind, _inspect.UnionType):
        return st.one_of(*(values(t) for t in kind.types))
    if isinstance(kind, _inspect.ListType):
        return st.lists(values(kind.item_type), max_size=3)
    if isinstance(kind, _inspect.DictType):
        return st.dictionaries(values(kind.key_type), values(kind.value_type), max_size=3)
    if isinstance(kind, _inspect.StructType):
        return st.fixed_dictionaries(
            {f.name: values(f.type) for f in kind.fields if f.required},
            optional={f.name: values(f.type) for f in kind.fields if not f.required},
        )
    raise AssertionError(f"no strategy for {kind!r}")


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    kind: type[Payload] = draw(st.sampled_from(ALL_PAYLOADS))
    fields = draw(values(_inspect.type_info(kind)))
    try:
        return msgspec.convert(fields, kind)
    except (msgspec.ValidationError, ValueError):
        return draw(st.nothing())


events = st.lists(
    st.tuples(payloads(), st.integers(-100, 100)).map(
        lambda p: new_envelope(p[0], source="/fuzz", at=T0 + timedelta(seconds=p[1]))
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=2000) | st.text(max_size=300).map(str.encode))
def test_bytes_are_an_event_or_a_decode_error_never_anything_else(raw: bytes) -> None:
    for headers in (HEADERS, [], [("ce_specversion", b"1.0"), ("ce_type", raw[:20])]):
        try:
            decode(b"k", raw, headers)
        except DecodeError:
            pass


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads(), st.sampled_from(['"Infinity"', "NaN", "1e999", "-1e999", "[]", "{}", '""']))
def test_a_valid_event_with_one_value_made_absurd_is_refused_with_a_reason(
    payload: Payload, absurd: str
) -> None:
    _, value, _ = encode(new_envelope(payload, source="/fuzz"))
    data = msgspec.json.decode(value)["data"]
    for field in list(data)[:3]:
        spoiled = value.replace(
            msgspec.json.encode({field: data[field]})[1:-1],
            f'"{field}":{absurd}'.encode(),
            1,
        )
        envelope = decoded(_record(spoiled, topic=topic_of(type(payload)).name("shoal")))
        assert isinstance(envelope, str | Envelope)


def _record(value: bytes, topic: str = "t") -> Any:
    from aiokafka import ConsumerRecord

    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=HEADERS,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(events)
def test_no_service_handler_raises_on_any_valid_events(history: list[Envelope]) -> None:
    clock = FakeClock()
    services: list[Any] = [
        Scheduler(SchedulerSettings.from_env({}), clock=clock),
        Healer(HealerSettings.from_env({}), clock=clock),
        Autoscaler(AutoscalerSettings.from_env({}), clock=clock),
        ApiView(clock=clock),
    ]
    for envelope in history:
        for service in services:
            service.apply(envelope)
    for service in services[:3]:
        service.hearing.go_live()
        service.world.prune(clock.now() + 10_000)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(events)
def test_no_decider_raises_on_the_worlds_valid_events_build(history: list[Envelope]) -> None:
    clock = FakeClock()
    scheduler = Scheduler(SchedulerSettings.from_env({}), clock=clock)
    healer = Healer(HealerSettings.from_env({}), clock=clock)
    for envelope in history:
        scheduler.apply(envelope)
        healer.apply(envelope)
    now = clock.now()
    for view in scheduler.world.functions.functions.values():
        plan_function(
            function=view.name,
            spec=None if view.deleted else view.spec,
            revision=view.revision,
            desired=view.desired,
            replicas=scheduler.world.replicas.live_of(view.name),
            rooms=scheduler.rooms.rooms,
            placer=scheduler.placer,
            failures=scheduler.world.failures.of(view.name, view.revision),
            now=now,
            new_replica_id=f"{view.name}-x",
        )
        decide_function(
            view.spec,
            Observed(stable=3.0, panic=9.0, cpu_fraction=0.5, last_request_at=None, queued=2),
            ScalerMemory(desired=view.desired or 0),
            desired=view.desired,
            pinned=view.pinned_replicas,
            ready=len(scheduler.world.ready_replicas(view.name)),
            now=now,
        )
        rollback_for(view, healer.world.failures, now, progress_deadline_s=60, failure_threshold=3)
    nodes = list(healer.world.nodes.nodes.values())
    lost_nodes(nodes, now, 3.0)
    disruption(nodes, now, 3.0)
    returned_nodes(nodes)
    replicas = healer.world.replicas
    for node in nodes:
        drift(
            node,
            replicas.live_on(node.node),
            replicas.replicas,
            replicas.leave_unknown,
            healer.graces,
        )


def test_an_event_time_without_utc_offset_is_refused_not_compared() -> None:
    _, value, _ = encode(new_envelope(NodeCordoned(node="n0"), source="/fuzz", at=T0))
    naive = value.replace(b"+00:00", b"", 1).replace(b'Z"', b'"', 1)
    assert b"2026-11-25T12:00:00" in naive and naive != value
    refused = decoded(_record(naive))
    assert isinstance(refused, str) and "UTC offset" in refused


def test_an_event_on_a_topic_other_than_its_types_is_refused() -> None:
    _, value, _ = encode(new_envelope(NodeCordoned(node="n0"), source="/fuzz", at=T0))
    refused = decoded(_record(value, topic="node-commands.shoal"))
    assert isinstance(refused, str) and "belongs on the nodes topic" in refused
    assert isinstance(decoded(_record(value, topic="nodes.shoal")), Envelope)


@pytest.mark.parametrize(
    ("kind", "topic"),
    [
        (StartReplica, "replicas.shoal"),
        (NodeLost, "node-status.shoal"),
        (FunctionDeployed, "scale.shoal"),
        (ScaleDecision, "heartbeats.shoal"),
    ],
)
def test_a_type_its_topics_writers_may_not_say_is_refused(kind: type, topic: str) -> None:
    """A node's principal writes only node topics: what it says there of commands, losses
    or decisions is refused; the deciders' scale topic holds no user's deploy."""
    payload = next(p for p in sample_payloads() if type(p) is kind)
    _, value, _ = encode(new_envelope(payload, source="/forged", at=T0))
    refused = decoded(_record(value, topic=topic))
    assert isinstance(refused, str) and "belongs on the" in refused


def test_a_rollback_has_a_home_for_the_user_and_one_for_the_healer() -> None:
    rollback = FunctionRolledBack(function="f", from_revision=2, to_revision=1, reason="x")
    assert topic_of(FunctionRolledBack, "api") is FUNCTIONS
    assert topic_of(FunctionRolledBack, "healer") is SCALE
    assert topic_of(FunctionRolledBack) is FUNCTIONS
    _, value, _ = encode(new_envelope(rollback, source="/healer", at=T0))
    for name in ("functions.shoal", "scale.shoal"):
        assert isinstance(decoded(_record(value, topic=name)), Envelope)
    assert isinstance(decoded(_record(value, topic="replicas.shoal")), str)
