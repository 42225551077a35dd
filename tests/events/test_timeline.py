"""The audit timeline: a sentence per event, filters, and time order across topics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events import types as t
from events.envelope import Envelope, new_envelope
from events.timeline import Filters, describe, service_of, timeline
from tests.events.samples import sample_payloads

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_every_event_type_has_its_own_sentence() -> None:
    for sample in sample_payloads():
        text = describe(sample)
        assert text and text != type(sample).__name__, type(sample).__name__


def test_a_decision_says_who_what_and_why() -> None:
    decision = t.ScaleDecision(
        function="hello",
        revision=1,
        previous=1,
        desired=4,
        panic=True,
        reason="concurrency 38.2 over the 6 s panic window, target 7 per replica",
    )
    envelope = new_envelope(
        decision, source="/shoal/autoscaler/autoscaler-vm-1", at=T0, causation_id="stats-9"
    )
    (entry,) = timeline([envelope], Filters())
    assert entry.who == "autoscaler"
    assert entry.text == (
        "scaled hello 1 -> 4 (panic): concurrency 38.2 over the 6 s panic window, "
        "target 7 per replica"
    )
    assert entry.line().endswith("(caused by stats-9)")
    assert service_of("/somewhere/else") == "/somewhere/else"


def test_filters_and_time_order() -> None:
    def at(seconds: int, payload: t.Payload) -> Envelope:
        return new_envelope(payload, source="/shoal/x/y", at=T0 + timedelta(seconds=seconds))

    events = [
        at(3, t.NodeCordoned(node="n1")),
        at(1, t.FunctionDeleted(function="a")),
        at(2, t.FunctionDeleted(function="b")),
        at(4, t.NodeDrained(node="n2")),
    ]
    everything = timeline(events, Filters())
    assert [e.time.second for e in everything] == [1, 2, 3, 4]
    only_a = timeline(events, Filters(function="a"))
    assert [e.function for e in only_a] == ["a"]
    window = timeline(
        events,
        Filters(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=3)),
    )
    assert [e.time.second for e in window] == [2, 3]
    for wanted in ("node.drained", "dev.shoal.node.drained", "NodeDrained"):
        (drained,) = timeline(events, Filters(types=[wanted]))
        assert drained.node == "n2"
    assert timeline(events, Filters(node="n1", types=["node.drained"])) == []
