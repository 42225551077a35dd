"""What a process writes, every reader can read: free text is cut to its declared length."""

from __future__ import annotations

from events.bounds import printable, within_bounds
from events.envelope import decode, encode, new_envelope
from events.projections.world import World
from events.types import ReplicaFailed, ScaleDecision


def failed(**extra: object) -> ReplicaFailed:
    fields: dict[str, object] = {
        "function": "f",
        "revision": 1,
        "replica_id": "r1",
        "node": "n1",
        "reason": "exited",
    }
    return ReplicaFailed(**{**fields, **extra})  # type: ignore[arg-type]


def test_a_failure_with_a_flood_of_logs_is_cut_to_what_readers_accept() -> None:
    flood = "\x01\x02" * 200_000
    event = within_bounds(
        failed(reason="x" * 50_000, last_logs=[printable(flood)] * 500, exit_code=1)
    )
    key, value, headers = encode(new_envelope(event, source="/t"))
    assert len(value) < 64 * 1024
    read = decode(key, value, headers).data
    assert isinstance(read, ReplicaFailed)
    assert len(read.reason) == 2000 and read.reason.endswith("...")
    assert len(read.last_logs) == 20 and all(len(line) <= 400 for line in read.last_logs)
    assert "\x01" not in read.last_logs[0] and "\\x01" in read.last_logs[0]


def test_an_event_within_bounds_is_left_as_it_is() -> None:
    event = failed(last_logs=["a", "b"])
    assert within_bounds(event) is event


def test_a_failure_the_platform_caused_is_told_but_not_counted() -> None:
    world = World()
    world.apply(new_envelope(failed(cause="platform", replica_id="p"), source="/t"), 1.0)
    assert world.failures.of("f", 1).failures == 0
    assert world.failures.of_function("f").last == "exited"
    world.apply(new_envelope(failed(replica_id="q"), source="/t"), 2.0)
    assert world.failures.of("f", 1).failures == 1


def test_a_decision_whose_inputs_overflow_is_held_to_what_readers_accept() -> None:
    inputs = {"rate": float("inf"), "low": -1e300, "nan": float("nan"), "ok": 2.5}
    inputs.update({f"extra{n}": float(n) for n in range(100)})
    event = within_bounds(
        ScaleDecision(
            function="f", revision=1, previous=1, desired=2, panic=False, reason="", inputs=inputs
        )
    )
    read = decode(*encode(new_envelope(event, source="/t"))).data
    assert isinstance(read, ScaleDecision)
    assert len(read.inputs) == 64
    assert read.inputs["rate"] == 1e15 and read.inputs["low"] == -1e15
    assert read.inputs["nan"] == 0.0 and read.inputs["ok"] == 2.5
