"""One valid payload of every event type, for round-trip tests."""

from events import types as t

SPEC = t.FunctionSpec(
    name="hello",
    image="shoal/hello:1",
    env={"A": "1"},
    command=["httpd"],
    cpu=0.25,
    memory_mb=64,
    concurrency_limit=10,
    max_replicas=5,
)
CAPACITY = t.NodeCapacity(cpus=2.0, memory_mb=4096, max_replicas=50)
REPLICA = {"function": "hello", "revision": 1, "replica_id": "hello-1-abc", "node": "n1"}


def sample_payloads() -> list[t.Payload]:
    samples: list[t.Payload] = [
        t.FunctionDeployed(function="hello", revision=1, spec=SPEC, requested_by="alice"),
        t.FunctionUpdated(function="hello", revision=2, spec=SPEC),
        t.FunctionDeleted(function="hello"),
        t.FunctionRolledBack(
            function="hello", from_revision=2, to_revision=1, reason="revision 2 crashed 3 times"
        ),
        t.ScaleRequested(function="hello", replicas=3),
        t.TrafficSplit(
            function="hello",
            targets=[
                t.TrafficTarget(revision=1, percent=90),
                t.TrafficTarget(revision=2, percent=10),
            ],
            requested_by="alice",
        ),
        t.RevisionTagged(function="hello", tag="canary", revision=2),
        t.CanaryAnalysed(
            function="hello",
            revision=2,
            stable=1,
            step=2,
            percent=25,
            decision="promote",
            reason="step 1 held",
            inputs={"canary_requests": 40, "canary_error_ratio": 0.0},
        ),
        t.RequestStats(
            function="hello",
            api_instance="api-1",
            interval_s=1.0,
            requests=40,
            errors=1,
            mean_concurrency=3.5,
            peak_concurrency=7,
            queue_depth=0,
            latency_buckets=[0, 5, 30, 4, 1],
        ),
        t.ColdStartDemand(function="hello", api_instance="api-1", queued=2),
        t.ContainerStats(
            function="hello",
            revision=1,
            replica_id="hello-1-abc",
            node="n1",
            cpu_fraction=0.4,
            cpu_cores_used=0.1,
            memory_bytes=1 << 20,
            memory_limit_bytes=64 << 20,
        ),
        t.ScaleDecision(
            function="hello",
            revision=1,
            previous=1,
            desired=4,
            panic=True,
            reason="panic",
            inputs={"panic_concurrency": 38.2},
        ),
        t.PlacementPending(function="hello", revision=1, pending=2, reason="no node fits"),
        t.StartReplica(
            node="n1", function="hello", revision=1, replica_id="hello-1-abc", spec=SPEC
        ),
        t.DrainReplica(node="n1", function="hello", replica_id="hello-1-abc"),
        t.StopReplica(node="n1", function="hello", replica_id="hello-1-abc"),
        t.ReplicaStarting(**REPLICA),
        t.ReplicaReady(**REPLICA, endpoint="http://127.0.0.1:30001", concurrency_limit=10),
        t.ReplicaDraining(**REPLICA),
        t.ReplicaStopped(**REPLICA, reason="scaled down"),
        t.ReplicaFailed(
            **REPLICA, reason="exited", exit_code=137, oom_killed=True, last_logs=["killed"]
        ),
        t.NodeJoined(node="n1", address="127.0.0.1", runtime="docker", capacity=CAPACITY),
        t.NodeHeartbeat(
            node="n1",
            seq=7,
            capacity=CAPACITY,
            used_cpus=0.5,
            used_memory_mb=128,
            replicas=2,
            replica_ids=["hello-1-abc", "hello-1-def"],
        ),
        t.NodeLost(
            node="n1",
            last_heartbeat_at="2026-11-24T12:00:00+00:00",
            timeout_s=3,
            evidence="no heartbeat for 3.2 s",
        ),
        t.CommandsClaimed(node="n1", epoch=3),
        t.NodeClaimed(node="n1", epoch=3),
        t.ScaleClaimed(function="hello", epoch=2),
        t.NodeCordoned(node="n1", requested_by="ops"),
        t.NodeUncordoned(node="n1"),
        t.NodeDrainRequested(node="n1"),
        t.NodeDrained(node="n1"),
        t.NodeReturned(node="n1", lost_for_s=12.5, moved_replicas=["hello-1-abc"]),
        t.DriftRepaired(
            node="n1",
            kind="missing",
            replica_id="hello-1-abc",
            function="hello",
            revision=1,
            reason="not reported by its node in 2 heartbeats",
        ),
        t.NodeRuntimeChanged(
            node="n1", available=False, reason="docker: connection refused", lost_replicas=[]
        ),
        t.NodeLossSuspended(
            suspended=True, reason="every node went silent at once", silent_nodes=["n1"]
        ),
        t.DecisionFailed(
            subject="hello", decider="scheduler", error="ZeroDivisionError()", retry_in_s=1.0
        ),
        t.TokenCreated(
            token_id="0123456789ab",
            scope="invoke",
            functions=["hello"],
            name="ci",
            digest="f" * 64,
            created_by="admin",
        ),
        t.TokenRevoked(token_id="0123456789ab", revoked_by="admin"),
        t.SecretSet(
            name="db",
            sealed=t.SealedSecret(
                name="db", version=1, keys=["password"], key_id="0" * 16, ciphertext="AAAA"
            ),
            set_by="admin",
        ),
        t.SecretRemoved(name="db", removed_by="admin"),
    ]
    return samples
