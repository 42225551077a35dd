"""The request path: proxying, cold starts, queues, routes from replica events, balancing."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from events.bus import EventProducer
from events.types import (
    ColdStartDemand,
    ReplicaDraining,
    ReplicaStopped,
    RequestStats,
)
from tests.api.conftest import (
    AUTH,
    ReplicaFactory,
    announce,
    announce_at,
    deploy,
    routed,
    wait_routed,
    wait_states,
)
from tests.support.event_log import EventLog
from tests.support.ports import free_port
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka


async def test_methods_headers_query_and_bodies_pass_through(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "echo")
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        async with http.request(
            method,
            f"{api.url}/fn/echo/a/b?x=1&y=2",
            data=b"payload-" + method.encode(),
            headers={
                "X-Custom": "kept",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "this hop only",
                "TE": "trailers",
                "X-Forwarded-For": "10.0.0.9",
                "Forwarded": "for=10.0.0.9",
            },
        ) as reply:
            assert reply.status == 200, (method, await reply.text())
            echoed = await reply.json()
            assert reply.headers["X-Replica"] == "echo-r1"
            assert reply.headers["Set-Cookie"] == "a=1"
        assert echoed["method"] == method
        assert echoed["path"] == "/a/b"
        assert echoed["query"] == {"x": "1", "y": "2"}
        assert echoed["body"] == f"payload-{method}"
        headers = {k.lower(): v for k, v in echoed["headers"].items()}
        assert headers["x-custom"] == "kept"
        assert "te" not in headers and "x-hop" not in headers
        assert headers["x-forwarded-for"] == "127.0.0.1", "set by the api, not the caller"
        assert (
            headers["forwarded"] == f'for="127.0.0.1";host="127.0.0.1:{api.http_port}";proto=http'
        )
        assert headers["x-forwarded-host"] == f"127.0.0.1:{api.http_port}"
        assert headers["x-forwarded-proto"] == "http"


async def test_a_function_never_sees_a_shoal_token_or_cookie(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await routed(http, api, agent_events, replica, "peek")
    cookie = {"Cookie": "shoal_session=s3cret; theirs=1"}
    for authorization in (
        AUTH["Authorization"],
        "Bearer shoal_t1_whatever",
        "Token shoal_t1_whatever",
        "Basic dXNlcjpwdw==",
    ):
        headers = {"Authorization": authorization, **cookie}
        async with http.get(f"{api.url}/fn/peek/", headers=headers) as reply:
            echoed = await reply.json()
        seen = {k.lower(): v for k, v in echoed["headers"].items()}
        assert seen["cookie"] == "theirs=1"
        shoal = not authorization.startswith("Basic")
        assert ("authorization" in seen) is not shoal, (authorization, seen)


async def test_large_and_streamed_responses_pass_through(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await deploy(http, api, "data")
    await announce(agent_events, "data", await replica("data-r1"))
    await wait_routed(http, api, "data", 1)
    async with http.get(f"{api.url}/fn/data/big?bytes={8 << 20}") as reply:
        assert reply.status == 200
        assert len(await reply.read()) == 8 << 20
    arrivals = []
    started = time.monotonic()
    async with http.get(f"{api.url}/fn/data/stream?chunks=3&delay=0.4") as reply:
        async for chunk in reply.content.iter_any():
            arrivals.append((time.monotonic() - started, chunk))
    assert b"".join(c for _, c in arrivals) == b"chunk 0\nchunk 1\nchunk 2\n"
    assert arrivals[0][0] < 0.3, "the first chunk arrives before the replica finished"


async def test_unknown_functions_get_404_json(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api.url}/fn/ghost/x") as reply:
        assert reply.status == 404
        assert (await reply.json())["function"] == "ghost"


async def test_a_cold_start_is_held_and_released_when_a_replica_is_ready(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
    events: EventLog,
) -> None:
    await deploy(http, api, "cold", min_replicas=0)
    call = asyncio.create_task(http.get(f"{api.url}/fn/cold/hi"))
    (demand,) = await events.wait_for(ColdStartDemand, timeout_s=5)
    assert demand.function == "cold" and demand.queued == 1
    assert not call.done()
    await announce(agent_events, "cold", await replica("cold-r1"))
    async with await asyncio.wait_for(call, 10) as reply:
        assert reply.status == 200
        assert (await reply.json())["path"] == "/hi"


async def test_past_the_queue_bound_requests_get_503_with_retry_after(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    await deploy(http, api, "busy", request_timeout_s=5)
    waiting = [asyncio.create_task(http.get(f"{api.url}/fn/busy/")) for _ in range(3)]
    await asyncio.sleep(0.5)
    async with http.get(f"{api.url}/fn/busy/") as reply:
        assert reply.status == 503
        assert reply.headers["Retry-After"] == "1"
        assert (await reply.json())["queue_limit"] == 3
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_a_cold_start_past_the_timeout_gets_504_saying_so(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    await deploy(http, api, "late", request_timeout_s=1)
    started = time.monotonic()
    async with http.get(f"{api.url}/fn/late/") as reply:
        assert reply.status == 504
        body = await reply.json()
    assert "cold start timeout" in body["error"]
    assert 0.9 < time.monotonic() - started < 3


async def test_requests_waiting_for_a_deleted_function_get_410(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    await deploy(http, api, "doomed", request_timeout_s=20)
    call = asyncio.create_task(http.get(f"{api.url}/fn/doomed/"))
    await asyncio.sleep(0.5)
    async with http.delete(f"{api.url}/v1/functions/doomed", headers=AUTH) as reply:
        assert reply.status == 202
    async with await asyncio.wait_for(call, 5) as reply:
        assert reply.status == 410


async def test_draining_stops_new_requests_while_in_flight_ones_finish(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await deploy(http, api, "drain")
    first, second = await replica("drain-r1"), await replica("drain-r2")
    await announce(agent_events, "drain", first)
    await wait_routed(http, api, "drain", 1)
    in_flight = asyncio.create_task(http.get(f"{api.url}/fn/drain/slow?s=1.5"))
    await asyncio.sleep(0.3)
    await announce(agent_events, "drain", second)
    await agent_events.publish(
        ReplicaDraining(function="drain", revision=1, replica_id="drain-r1", node="n1")
    )
    await wait_states(http, api, "drain", {"drain-r1": "draining", "drain-r2": "ready"})
    for _ in range(5):
        async with http.get(f"{api.url}/fn/drain/") as reply:
            assert (await reply.json())["replica"] == "drain-r2"
    async with await in_flight as reply:
        assert reply.status == 200
    await agent_events.publish(
        ReplicaStopped(function="drain", revision=1, replica_id="drain-r2", node="n1")
    )
    await wait_routed(http, api, "drain", 0)


async def test_least_outstanding_spreads_load_and_respects_concurrency_limits(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await deploy(http, api, "spread", concurrency_limit=2, request_timeout_s=30)
    servers = [await replica(f"spread-r{n}") for n in range(2)]
    for server in servers:
        await announce(agent_events, "spread", server, limit=2)
    await wait_routed(http, api, "spread", 2)
    replies = await asyncio.gather(*(http.get(f"{api.url}/fn/spread/slow?s=0.4") for _ in range(6)))
    assert [r.status for r in replies] == [200] * 6
    for reply in replies:
        reply.release()
    served = [len(s.seen) for s in servers]
    assert sum(served) == 6 and min(served) >= 2, served  # the 2 that waited: to either
    assert [s.peak for s in servers] == [2, 2], "never over the replica's limit"


async def test_a_refused_connection_is_retried_on_another_replica(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
) -> None:
    await deploy(http, api, "retry")
    await announce(agent_events, "retry", await replica("retry-good"))
    await announce_at(agent_events, "retry", "retry-dead", f"http://127.0.0.1:{free_port()}")
    await wait_routed(http, api, "retry", 2)
    for _ in range(6):
        async with http.post(f"{api.url}/fn/retry/", data=b"keep me") as reply:
            assert reply.status == 200
            answer = await reply.json()
        assert (answer["replica"], answer["body"]) == ("retry-good", "keep me")


async def test_request_stats_are_published_with_correct_counts(
    api: ServiceProcess,
    http: aiohttp.ClientSession,
    agent_events: EventProducer,
    replica: ReplicaFactory,
    events: EventLog,
) -> None:
    await deploy(http, api, "counted")
    await announce(agent_events, "counted", await replica("counted-r1"))
    await wait_routed(http, api, "counted", 1)
    for path in ["ok"] * 6 + ["fail"]:
        async with http.get(f"{api.url}/fn/counted/{path}") as reply:
            await reply.read()
    slow = [asyncio.create_task(http.get(f"{api.url}/fn/counted/slow?s=1.2")) for _ in range(3)]
    for reply in await asyncio.gather(*slow):
        reply.release()
    await asyncio.sleep(1.2)
    stats = events.of(RequestStats, lambda s: s.function == "counted")
    assert sum(s.requests for s in stats) == 10
    assert sum(s.errors for s in stats) == 1
    assert max(s.peak_concurrency for s in stats) == 3
    assert max(s.mean_concurrency for s in stats) > 1.0
    assert sum(sum(s.latency_buckets) for s in stats) == 10
    assert all(s.interval_s == 0.5 for s in stats)
