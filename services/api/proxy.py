"""The request path: `ANY /fn/{name}/{path}` to a ready replica, holding requests while a
function cold-starts or all its replicas are at their concurrency limit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from events.types import ColdStartDemand
from services.api.request_stats import RequestWindow
from services.api.routing import Route
from services.api.upstream import (
    SAFE_METHODS,
    NoResponse,
    NotSent,
    Upstream,
    UpstreamError,
)
from services.api.view import ApiView
from services.common.forgetting import forget_series
from services.common.journal import Journal
from services.common.logs import StructLog

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
}
"""Framed again, or set again, by the request path."""
BUFFERED_BODY_LIMIT = 256 * 1024
"""Responses up to this size with a known length are read whole (cheaper); others stream."""
NOT_RETURNED = HOP_BY_HOP | {"content-length"}
REQUESTS = Counter("shoal_api_requests_total", "Function calls answered", ["function", "code"])
LATENCY = Histogram(
    "shoal_api_request_seconds",
    "Function call latency",
    ["function"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge("shoal_api_queue_depth", "Requests waiting for a replica", ["function"])
COLD_STARTS = Counter(
    "shoal_api_cold_starts_total", "Requests that found no ready replica", ["function"]
)
COLD_START_SECONDS = Histogram(
    "shoal_api_cold_start_seconds",
    "Wait of a cold-started request for its replica",
    ["function"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


class NoReplica(Exception):
    """No replica could take the request; `response` is what the caller gets."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


def error(status: int, message: str, **details: object) -> web.Response:
    return web.json_response({"error": message, **details}, status=status)


@dataclass
class Waiting:
    count: int = 0
    last_demand_at: float = 0.0


@dataclass
class FunctionProxy:
    view: ApiView
    journal: Journal
    upstream: Upstream
    log: StructLog
    source_instance: str
    queue_limit: int
    demand_repeat_s: float
    connect_attempts: int
    check_token: Callable[[web.Request], bool]
    clock: Callable[[], float] = time.monotonic
    windows: dict[str, RequestWindow] = field(default_factory=dict)
    waiting: dict[str, Waiting] = field(default_factory=dict)
    _latency: dict[str, Any] = field(default_factory=dict)
    _requests: dict[tuple[str, int], Any] = field(default_factory=dict)

    def forget(self, function: str) -> None:
        """Drop everything kept about a function that is gone, metric series included."""
        self.windows.pop(function, None)
        waiting = self.waiting.get(function)
        if waiting is not None and waiting.count == 0:
            del self.waiting[function]
        if self._latency.pop(function, None) is not None:
            forget_series(LATENCY, function)
        for key in [k for k in self._requests if k[0] == function]:
            del self._requests[key]
            forget_series(REQUESTS, function, str(key[1]) if key[1] else "other")
        for metric in (QUEUE_DEPTH, COLD_STARTS, COLD_START_SECONDS):
            forget_series(metric, function)

    def window(self, function: str) -> RequestWindow:
        found = self.windows.get(function)
        if found is None:
            found = self.windows[function] = RequestWindow(started_at=self.clock())
        return found

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        function = self.view.function(name)
        if function is None:
            return error(404, f"no function named {name!r}", function=name)
        if function.spec.private and not self.check_token(request):
            return error(
                401,
                "this function is private: send the api token as 'Authorization: Bearer <token>'",
            )
        started = self.clock()
        window = self.window(name)
        window.begin(started)
        latency = self._latency.get(name)
        if latency is None:
            latency = self._latency[name] = LATENCY.labels(name)
        status = 500
        try:
            response = await self._serve(
                request, name, deadline=started + function.spec.request_timeout_s
            )
            status = response.status
            return response
        except NoReplica as refusal:
            status = refusal.response.status
            return refusal.response
        finally:
            finished = self.clock()
            window.end(finished, latency_ms=(finished - started) * 1000, error=status >= 500)
            code = status if 100 <= status < 600 else 0
            counter = self._requests.get((name, code))
            if counter is None:
                label = str(code) if code else "other"
                counter = self._requests[(name, code)] = REQUESTS.labels(name, label)
            counter.inc()
            latency.observe(finished - started)

    async def _serve(
        self, request: web.Request, name: str, *, deadline: float
    ) -> web.StreamResponse:
        refused: set[str] = set()
        while True:
            route = await self._acquire(name, deadline, frozenset(refused))
            try:
                return await self._forward(request, name, route)
            except (NotSent, NoResponse) as failure:
                # Nothing was sent, or a safe request got no answer: another replica takes it.
                refused.add(route.replica_id)
                self.log.warning(
                    "request moved to another replica",
                    function=name,
                    replica=route.replica_id,
                    cause=str(failure),
                )
                if len(refused) >= self.connect_attempts:
                    raise NoReplica(
                        error(
                            502,
                            "replicas refused the connection",
                            function=name,
                            tried=sorted(refused),
                        )
                    ) from None
            finally:
                route.outstanding -= 1
                self.view.notify(name)

    def _pick(self, name: str, avoid: frozenset[str], *, waited: bool) -> Route | None:
        function = self.view.function(name)
        if function is None:
            said = " while the request waited" if waited else ""
            raise NoReplica(error(410, f"function {name!r} was deleted{said}", function=name))
        route = self.view.routes.pick(name, function.revision, avoid=avoid)
        if route is not None:
            route.outstanding += 1
        return route

    async def _acquire(self, name: str, deadline: float, avoid: frozenset[str]) -> Route:
        """A replica with room, waiting (bounded) while there is none."""
        route = self._pick(name, avoid, waited=False)
        if route is not None:
            return route
        waiting = self.waiting.setdefault(name, Waiting())
        if waiting.count >= self.queue_limit:
            raise NoReplica(
                web.json_response(
                    {
                        "error": "too many requests waiting for a replica",
                        "function": name,
                        "queue_limit": self.queue_limit,
                    },
                    status=503,
                    headers={"Retry-After": "1"},
                )
            )
        cold = not self.view.routes.routes(name)
        if cold:
            COLD_STARTS.labels(name).inc()
        waiting.count += 1
        QUEUE_DEPTH.labels(name).set(waiting.count)
        started = self.clock()
        try:
            route = await self._wait(name, deadline, avoid, waiting, cold=cold)
        finally:
            waiting.count -= 1
            QUEUE_DEPTH.labels(name).set(waiting.count)
        if cold:
            COLD_START_SECONDS.labels(name).observe(self.clock() - started)
        return route

    async def _wait(
        self, name: str, deadline: float, avoid: frozenset[str], waiting: Waiting, *, cold: bool
    ) -> Route:
        """Wait for a route to open up (demanding a replica while there is none)."""
        started = self.clock()
        while True:
            if not self.view.routes.routes(name):
                await self._publish_demand(name, waiting)
            signal = self.view.signal(name)
            remaining = deadline - self.clock()
            if remaining <= 0:
                what = (
                    "cold start timeout: no replica became ready in time"
                    if cold
                    else "timeout: every replica stayed at its concurrency limit"
                )
                waited = round(self.clock() - started, 3)
                raise NoReplica(error(504, what, function=name, waited_s=waited))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(remaining, self.demand_repeat_s))
            route = self._pick(name, avoid, waited=True)
            if route is not None:
                return route

    async def _publish_demand(self, name: str, waiting: Waiting) -> None:
        now = self.clock()
        if now - waiting.last_demand_at < self.demand_repeat_s:
            return
        waiting.last_demand_at = now
        demand = ColdStartDemand(
            function=name, api_instance=self.source_instance, queued=waiting.count
        )
        try:
            await self.journal.enqueue(demand)
        except Exception as exc:  # the request waits on; demand is said again shortly
            self.log.warning("could not publish cold-start demand", function=name, error=repr(exc))

    async def _forward(self, request: web.Request, name: str, route: Route) -> web.StreamResponse:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
        peer = request.remote or ""
        forwarded_for = request.headers.get("X-Forwarded-For")
        headers.append(("X-Forwarded-For", f"{forwarded_for}, {peer}" if forwarded_for else peer))
        headers.append(("X-Forwarded-Host", request.host))
        headers.append(("X-Forwarded-Proto", request.scheme))
        body: bytes | AsyncIterator[bytes] | None = None
        if request.body_exists:
            length = request.content_length
            if length is not None and length <= BUFFERED_BODY_LIMIT:
                body = await request.read()
            else:
                body = request.content.iter_any()
        try:
            upstream = await self.upstream.request(
                route.endpoint,
                request.method,
                upstream_target(request.raw_path, name),
                headers,
                body,
                buffer_limit=BUFFERED_BODY_LIMIT,
            )
        except NotSent:
            raise
        except NoResponse:
            if request.method in SAFE_METHODS and not isinstance(body, AsyncIterator):
                raise
            raise NoReplica(
                error(502, "the replica closed the connection without answering", function=name)
            ) from None
        except UpstreamError as failure:
            raise NoReplica(
                error(502, f"the replica did not answer properly: {failure}", function=name)
            ) from None
        returned = [(k, v) for k, v in upstream.headers if k.lower() not in NOT_RETURNED]
        if upstream.body is not None:
            whole = web.Response(status=upstream.status, reason=upstream.reason, body=upstream.body)
            whole.headers.extend(returned)
            return whole
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(returned)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        try:
            await response.prepare(request)
            async for chunk in upstream.chunks():
                await response.write(chunk)
        except BaseException:
            upstream.release(False)
            raise
        await response.write_eof()
        return response


def upstream_target(raw_path: str, name: str) -> str:
    """The replica's request target: the caller's raw path after `/fn/{name}`, with its query."""
    rest = raw_path[len(f"/fn/{name}") :]
    return rest if rest.startswith("/") else f"/{rest}"
