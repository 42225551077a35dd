"""The world as plain data, at any time of the history, and what changed between two times
(what `shoal replay` prints; also how tests compare worlds built in different orders)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from events.envelope import Envelope
from events.lifecycle import ReplicaState
from events.payloads.secrets import versions_of
from events.projections.world import World, settle

SETTLE_EVERY = 20_000

Snapshot = dict[str, dict[str, dict[str, object]]]


def snapshot(world: World) -> Snapshot:
    """Functions, live replicas, nodes, failures, tokens (never their digests) and secrets
    (names, versions and keys, never a value) as plain data."""
    return {
        "functions": _functions(world),
        "replicas": {
            r.replica_id: {
                "function": r.function,
                "revision": r.revision,
                "node": r.node,
                "state": str(r.state),
            }
            for r in sorted(world.replicas.live(), key=lambda r: r.replica_id)
        },
        "nodes": _nodes(world),
        "failures": {
            f"{function}/{revision}": {
                "failures": record.failures,
                "since_ready": record.since_ready,
                "ever_ready": record.ever_ready,
            }
            for (function, revision), record in sorted(world.failures.revisions.items())
        },
        "tokens": {
            t.token_id: {
                "scope": t.scope,
                "functions": ",".join(t.functions) or None,
                "name": t.name or None,
                "revoked": t.revoked,
            }
            for t in sorted(world.tokens.tokens.values(), key=lambda t: t.token_id)
        },
        "secrets": {
            name: {"version": v.version, "keys": ",".join(v.sealed.keys)}
            for name, v in sorted(world.secrets.secrets.items())
        },
    }


def _functions(world: World) -> dict[str, dict[str, object]]:
    functions: dict[str, dict[str, object]] = {}
    for name, view in sorted(world.functions.functions.items()):
        if view.deleted:
            continue
        live = world.replicas.live_of(name)
        failures = world.failures.of_function(name)
        functions[name] = {
            "revision": view.revision,
            "image": view.spec.image,
            "desired": view.desired,
            "ready": sum(1 for r in live if r.state is ReplicaState.READY),
            "replicas": len(live),
            "pinned": view.pinned_replicas,
            "last_decision": view.last_decision.reason if view.last_decision else None,
            "rollback_reason": view.rollback_reason or None,
            "pending": view.pending or None,
            "failures_since_ready": failures.since_ready or None,
            "secrets": versions_of(view.sealed.get(view.revision, ())) or None,
        }
    return functions


def _nodes(world: World) -> dict[str, dict[str, object]]:
    per_node = Counter(r.node for r in world.replicas.live())
    return {
        name: {
            "condition": n.condition,
            "cpus": n.capacity.cpus if n.capacity else None,
            "memory_mb": n.capacity.memory_mb if n.capacity else None,
            "replicas": per_node[name],
        }
        for name, n in sorted(world.nodes.nodes.items())
    }


def world_at(envelopes: Iterable[Envelope], at: datetime | None) -> World:
    """The world as it was at `at` (everything when None): the events written up to then,
    folded in the order they were read (Kafka's order per partition). They are not sorted
    by the times written in them: one key has several writers, whose clocks may differ,
    and the fold does not depend on the order across partitions. Each event counts as
    heard at the time written in it."""
    chosen = [e for e in envelopes if at is None or e.time <= at]
    world = World()
    for n, envelope in enumerate(chosen, start=1):
        world.apply(envelope, envelope.time.timestamp())
        if n % SETTLE_EVERY == 0:
            settle()
    return world


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    """What changed between two snapshots, a line per thing."""
    lines = []
    for section in ("functions", "replicas", "nodes", "tokens", "secrets"):
        old, new = before.get(section, {}), after.get(section, {})
        kind = section[:-1]
        for key in sorted(old.keys() | new.keys()):
            if key not in old:
                lines.append(f"+ {kind} {key}: {_fields(new[key])}")
            elif key not in new:
                lines.append(f"- {kind} {key}: {_fields(old[key])}")
            else:
                changed = [
                    f"{f} {old[key].get(f)!r} -> {new[key].get(f)!r}"
                    for f in sorted(old[key].keys() | new[key].keys())
                    if old[key].get(f) != new[key].get(f)
                ]
                if changed:
                    lines.append(f"~ {kind} {key}: {', '.join(changed)}")
    return lines


def _fields(values: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)
