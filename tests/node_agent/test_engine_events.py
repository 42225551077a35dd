"""What the engine's container events say of a replica's end."""

from __future__ import annotations

from services.node_agent.engine_events import DeathNotes, last_lines


def test_a_death_tells_the_signal_and_the_oom_noted_before_it_and_only_its_own() -> None:
    notes = DeathNotes()
    assert notes.fold("a", "kill", {"signal": "9"}) is None
    assert notes.fold("b", "oom", {}) is None
    killed = notes.fold("a", "die", {"exitCode": "137"})
    assert killed is not None and killed.killed and not killed.oom
    assert not killed.unexplained_kill
    oom = notes.fold("b", "die", {"exitCode": "137"})
    assert oom is not None and oom.oom and not oom.killed and not oom.unexplained_kill
    again = notes.fold("a", "die", {"exitCode": "137"})
    assert again is not None and not again.killed, "a note serves one death"
    assert again.unexplained_kill


def test_a_crash_exit_codes_and_removals() -> None:
    notes = DeathNotes()
    crashed = notes.fold("a", "die", {"exitCode": "1"})
    assert crashed is not None and crashed.exit_code == 1 and not crashed.unexplained_kill
    for bad in ("", "x", "1" * 20, "0x10"):
        death = notes.fold("a", "die", {"exitCode": bad})
        assert death is not None and death.exit_code is None
    removed = notes.fold("a", "destroy", {})
    assert removed is not None and removed.removed
    assert notes.fold("a", "start", {}) is None


def test_log_tails_are_bounded_and_printable() -> None:
    lines = last_lines(b"\x1b[31mred\x00\n" + b"x" * 100_000 + b"\n" * 30 + b"last\xff")
    assert len(lines) <= 20
    assert lines[-1].startswith("last")
    assert all(len(line) <= 400 and "\x1b" not in line and "\x00" not in line for line in lines)
