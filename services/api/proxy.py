"""The request path: `ANY /fn/{name}/{path}` to a ready replica, holding requests while a
function cold-starts or all its replicas are at their concurrency limit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import web
from multidict import MultiMapping

from events.projections.functions import FunctionView
from events.types import ColdStartDemand
from services.api.auth import Principal
from services.api.body import (
    BodyBudget,
    NoReplica,
    error,
    private_refusal,
    queue_full,
    read_body,
)
from services.api.call import Call
from services.api.forwarding import BadRequest, function_segment, response_headers
from services.api.incoming import Incoming, Outcome, Sink, Whole
from services.api.proxy_metrics import (
    COLD_START_SECONDS,
    COLD_STARTS,
    EJECTIONS,
    QUEUE_DEPTH,
    RELAYED,
    CallMetrics,
)
from services.api.relay import relay_headers, relayed_by_peer
from services.api.request_stats import RequestWindow
from services.api.routing import Route
from services.api.streaming import stream
from services.api.traffic import (
    REVISION_HEADER,
    TAG_HEADER,
    Chooser,
    Target,
    UnknownTag,
    split_name,
)
from services.api.upstream import (
    SAFE_METHODS,
    NoResponse,
    NotSent,
    Upstream,
    UpstreamError,
)
from services.api.view import ApiView
from services.common.journal import Journal
from services.common.logs import StructLog

CLIENT_CLOSED = 499
"""Counted for a call whose caller hung up (nginx's code): not the platform's error."""
MOST_UNANSWERED = 2
"""Replicas a safe call may try that closed the connection without answering: past it
the call itself is suspect (it may be what kills them), and gets 502."""
BUFFERED_BODY_LIMIT = 256 * 1024
"""Responses up to this size with a known length are read whole (cheaper); others stream."""


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
    principal: Callable[[MultiMapping[str]], Principal | None]
    carries_token: Callable[[MultiMapping[str]], bool]
    bodies: BodyBudget
    clock: Callable[[], float] = time.monotonic
    peer_proof: str = ""
    """What api instances show each other when they relay calls ('': no relaying)."""
    windows: dict[tuple[str, int], RequestWindow] = field(default_factory=dict)
    """(function, revision) -> its calls since the last stats."""
    waiting: dict[str, Waiting] = field(default_factory=dict)
    chooser: Chooser = field(default_factory=Chooser)
    metrics: CallMetrics = field(default_factory=CallMetrics)

    def forget(self, function: str) -> None:
        """Drop everything kept about a function that is gone, metric series included."""
        for key in [k for k in self.windows if k[0] == function]:
            del self.windows[key]
        waiting = self.waiting.get(function)
        if waiting is not None and waiting.count == 0:
            del self.waiting[function]
        self.chooser.forget(function)
        self.metrics.forget(function)

    def _begin(self, key: tuple[str, int], now: float) -> RequestWindow:
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = RequestWindow(started_at=self.clock())
        window.begin(now)
        return window

    async def handle(self, request: Incoming, sink: Sink) -> None:
        """Serve one call, its answer written to `sink`."""
        admitted = self._admit(request)
        outcome: Outcome | web.Response = (
            admitted
            if isinstance(admitted, web.Response)
            else await self._call(request, *admitted, sink)
        )
        if isinstance(outcome, web.Response):
            await sink.whole(Whole.of(outcome))
        elif isinstance(outcome, Whole):
            await sink.whole(outcome)

    def _admit(self, request: Incoming) -> tuple[FunctionView, Target] | web.Response:
        """The function and revision a call goes to, or why it may not go."""
        name, tag = split_name(function_segment(request.raw_path))
        function = self.view.function(name)
        if function is None:
            return error(404, f"no function named {name!r}", function=name)
        if function.spec.private:
            refused = private_refusal(self.principal(request.headers), name)
            if refused is not None:
                return refused
        target = self._target(request, function, tag)
        return target if isinstance(target, web.Response) else (function, target)

    async def _call(
        self, request: Incoming, function: FunctionView, target: Target, sink: Sink
    ) -> Outcome | web.Response:
        """The call carried out and counted (relayed to a peer, or served here)."""
        name = function.name
        relayed = relayed_by_peer(request.headers, self.peer_proof) if self.peer_proof else None
        started = self.clock()
        shared = function.spec.concurrency_limit > 0 and not relayed  # limited: shared by apis
        peer = self.view.routes.relay_to(name, target, started) if shared else None
        key = (name, target.revision)
        window = None if peer else self._begin(key, started)
        status, by_peer = 500, False
        call: Call | None = None
        try:
            call = Call.of(
                request,
                name,
                function.spec,
                deadline=started + function.spec.request_timeout_s,
                shoal_credential=self.carries_token(request.headers),
                relayed=relayed,
            )
            call.to = target
            call.body = await read_body(request, call, self.bodies, self.clock)
            found = await self._relay(request, call, peer, sink) if peer else None
            by_peer = found is not None
            if found is None:
                window = window or self._begin(key, self.clock())
                found = await self._serve(request, call, sink)
            status = found if isinstance(found, int) else found.status
            return found
        except BadRequest as bad:
            status = 400
            return error(400, str(bad), function=name)
        except NoReplica as refusal:
            status = refusal.response.status
            return refusal.response
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            self.bodies.give(len(call.body or b"") if call is not None else 0)
            self._account(name, None if by_peer else window, by_peer, status, started)

    def _account(
        self, name: str, window: RequestWindow | None, by_peer: bool, status: int, started: float
    ) -> None:
        """The call in the request statistics and metrics (one a peer answered is counted
        there)."""
        if by_peer:
            RELAYED.labels(name).inc()
            return
        finished = self.clock()
        if window is not None:
            window.end(finished, latency_ms=(finished - started) * 1000, error=status >= 500)
        self.metrics.answered(name, status, finished - started)

    def _target(self, request: Incoming, function: FunctionView, tag: str) -> Target | web.Response:
        """The revision the call goes to: its tag's (from the path or the header), or by
        the function's split; a 404 for a tag the function does not have."""
        tag = tag or request.headers.get(TAG_HEADER, "")
        try:
            routed = self.view.routes.revisions(function.name)
            return self.chooser.target(function.name, function.traffic, tag, routed)
        except UnknownTag:
            name = function.name
            return error(404, f"function {name!r} has no tag {tag!r}", tags=sorted(function.tags))

    async def _relay(self, request: Incoming, call: Call, peer: str, sink: Sink) -> Outcome | None:
        """The call served by the peer api that holds the replicas' slots (None: that
        peer refused the connection, and the call is served here)."""
        headers = relay_headers(
            list(request.headers.items()),
            proof=self.peer_proof,
            client=request.remote,
            host=request.host,
        )
        whole = msgspec.structs.replace(call.spec, response_start_timeout_s=0)  # queued there
        relayed = Call(call.name, whole, call.deadline, request.raw_path, headers, call.body)
        route = Route(replica_id=f"api {peer}", revision=0, node="", endpoint=peer, limit=0)
        try:
            return await self._forward(request, relayed, route, sink)
        except NotSent as failure:
            self.log.warning(
                "the peer api refused a relayed call: served here",
                function=call.name,
                peer=peer,
                cause=str(failure),
            )
            return None
        except NoResponse:
            raise NoReplica(
                error(502, "the peer api closed the connection without answering", peer=peer)
            ) from None

    async def _serve(self, request: Incoming, call: Call, sink: Sink) -> Outcome:
        """Forward to a replica with room; one that refuses the connection is ejected and
        the call moves on, or waits for a replica within its timeout."""
        while True:
            route = await self._acquire(call, frozenset(call.unanswered))
            try:
                return await self._forward(request, call, route, sink)
            except NotSent as failure:
                self._eject(call.name, route, str(failure))
            except NoResponse as failure:
                call.unanswered.add(route.replica_id)
                if len(call.unanswered) > MOST_UNANSWERED:
                    raise NoReplica(
                        error(
                            502,
                            "replicas closed the connection without answering",
                            function=call.name,
                        )
                    ) from None
                self.log.warning(
                    "a safe request moved to another replica",
                    function=call.name,
                    replica=route.replica_id,
                    cause=str(failure),
                )
            finally:
                route.outstanding -= 1
                self.view.notify(call.name)

    def _eject(self, name: str, route: Route, cause: str) -> None:
        """Out of routing; calls that were refused at once count as one refusal."""
        if route.ejected_until > self.clock():
            return
        until = route.eject(self.clock())
        EJECTIONS.labels(name).inc()
        self.log.warning(
            "replica ejected from routing",
            function=name,
            replica=route.replica_id,
            for_s=round(until - self.clock(), 3),
            cause=cause,
        )

    def _pick(self, call: Call, avoid: frozenset[str], *, waited: bool) -> Route | None:
        name = call.name
        function = self.view.function(name)
        if function is None:
            said = " while the request waited" if waited else ""
            raise NoReplica(error(410, f"function {name!r} was deleted{said}", function=name))
        target = Target(function.revision, strict=False) if call.to.latest else call.to
        route = self.view.routes.pick(name, target, avoid=avoid, now=self.clock())
        if route is not None:
            route.outstanding += 1
        return route

    async def _acquire(self, call: Call, avoid: frozenset[str]) -> Route:
        """A replica with room, waiting (bounded) while there is none."""
        route = self._pick(call, avoid, waited=False)
        if route is not None:
            return route
        name = call.name
        waiting = self.waiting.setdefault(name, Waiting())
        if waiting.count >= self.queue_limit:
            raise NoReplica(queue_full(name, self.queue_limit))
        cold = not self.view.routes.routes(name)
        if cold:
            COLD_STARTS.labels(name).inc()
        waiting.count += 1
        QUEUE_DEPTH.labels(name).set(waiting.count)
        started = self.clock()
        try:
            route = await self._wait(call, avoid, waiting, cold=cold)
        finally:
            waiting.count -= 1
            QUEUE_DEPTH.labels(name).set(waiting.count)
        if cold:
            COLD_START_SECONDS.labels(name).observe(self.clock() - started)
        return route

    async def _wait(
        self, call: Call, avoid: frozenset[str], waiting: Waiting, *, cold: bool
    ) -> Route:
        """Wait for a route to open up (demanding a replica while there is none)."""
        name, deadline = call.name, call.deadline
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
                    else "timeout: no replica took the request (each was at its concurrency "
                    "limit, or ejected after refusing connections)"
                )
                waited = round(self.clock() - started, 3)
                raise NoReplica(error(504, what, function=name, waited_s=waited))
            pause = min(remaining, self.demand_repeat_s)
            back = self.view.routes.returns_at(name, self.clock())
            if back is not None:
                pause = min(pause, max(0.0, back - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), pause)
            route = self._pick(call, avoid, waited=True)
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

    async def _forward(self, request: Incoming, call: Call, route: Route, sink: Sink) -> Outcome:
        """Send the call to `route`: its answer whole, or streamed on (holding the slot)."""
        try:
            async with asyncio.timeout(call.response_start_s(self.clock())):
                upstream = await self.upstream.request(
                    route.endpoint,
                    request.method,
                    call.target,
                    call.headers,
                    call.body,
                    buffer_limit=BUFFERED_BODY_LIMIT,
                )
        except TimeoutError:
            raise NoReplica(
                error(504, "timeout: the replica did not start its response", function=call.name)
            ) from None
        except NotSent:
            raise
        except NoResponse:
            if request.method in SAFE_METHODS:
                raise
            raise NoReplica(
                error(
                    502, "the replica closed the connection without answering", function=call.name
                )
            ) from None
        except UpstreamError as failure:
            raise NoReplica(
                error(502, f"the replica did not answer properly: {failure}", function=call.name)
            ) from None
        route.answered()
        returned = response_headers(upstream.headers)
        if route.revision:  # a replica's answer, not a peer's (which carries its own)
            returned = [h for h in returned if h[0].lower() != REVISION_HEADER.lower()]
            returned.append((REVISION_HEADER, str(route.revision)))
        if upstream.body is None:
            await stream(sink, call, upstream, returned, clock=self.clock, log=self.log)
            return upstream.status
        head = request.method == "HEAD" and upstream.content_length is not None
        length = upstream.content_length if head else None
        return Whole(upstream.status, upstream.reason, returned, upstream.body, length)
