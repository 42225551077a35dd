"""What the api says of a function: its spec, revisions, replicas, decisions and failures
(its secrets by name and version only)."""

from __future__ import annotations

from typing import Any

import msgspec

from events.lifecycle import ReplicaState
from events.projections.functions import FunctionView
from services.api.view import ApiView


def function_status(view: ApiView, function: FunctionView) -> dict[str, Any]:
    replicas = sorted(view.world.replicas.live_of(function.name), key=lambda r: r.replica_id)
    failures = view.world.failures.of_function(function.name)
    decision = function.last_decision
    return {
        "name": function.name,
        "revision": function.revision,
        "revisions": sorted(function.revisions),
        "spec": msgspec.to_builtins(function.spec),
        "desired": function.desired,
        "ready": sum(1 for r in replicas if r.state is ReplicaState.READY),
        "replicas": [
            {
                "id": r.replica_id,
                "revision": r.revision,
                "node": r.node,
                "state": str(r.state),
                "endpoint": r.endpoint,
            }
            for r in replicas
        ],
        "last_decision": None
        if decision is None
        else {
            "previous": decision.previous,
            "desired": decision.desired,
            "panic": decision.panic,
            "reason": decision.reason,
            "at": function.last_decision_at.isoformat() if function.last_decision_at else None,
        },
        "manual_replicas": function.pinned_replicas,
        "rollback_reason": function.rollback_reason,
        "failures": {"since_last_ready": failures.since_ready, "last": failures.last},
        "pending": {"replicas": function.pending, "reason": function.pending_reason},
        "secrets": {s.name: s.version for s in function.sealed.get(function.revision, ())},
        "traffic": traffic_status(function),
    }


def traffic_status(function: FunctionView) -> dict[str, Any]:
    """The split, the tags and the canary in progress, as the api reports them."""
    traffic = function.traffic
    rollout = function.rollout
    canary = None
    if rollout is not None:
        analysis = rollout.analysis
        canary = {
            "revision": rollout.canary,
            "stable": rollout.stable,
            "step": rollout.step,
            "steps": list(function.revisions[rollout.canary].canary_steps),
            "percent": rollout.percent,
            "analysis": None
            if analysis is None
            else {
                "decision": analysis.decision,
                "step": analysis.step,
                "reason": analysis.reason,
                "inputs": analysis.inputs,
            },
        }
    return {
        "split": [{"revision": r, "percent": p} for r, p in sorted(traffic.shares().items())],
        "tags": dict(sorted(traffic.tags.items())),
        "canary": canary,
    }
