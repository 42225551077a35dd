"""The api process: the view fed from Kafka, the control plane, the request path, and the
request statistics it publishes every tick for the autoscaler."""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from events.envelope import Envelope
from events.topics import SECRETS, TOKENS, WORLD_TOPICS
from events.types import RequestStats
from services.api.body import BodyBudget
from services.api.control import ControlPlane
from services.api.dashboard import Dashboard
from services.api.front import Front
from services.api.incoming import Incoming, Sink, Whole, aiohttp_route
from services.api.peers import ApiPeers
from services.api.proxy import FunctionProxy
from services.api.relay import peer_proof
from services.api.secret_routes import SecretRoutes
from services.api.settings import Settings
from services.api.token_routes import TokenRoutes
from services.api.traffic_routes import TrafficRoutes
from services.api.upstream import Upstream
from services.api.view import ApiView
from services.common.clock import SYSTEM_CLOCK, Clock, Every
from services.common.forgetting import FORGET_AFTER_S, PRUNE_EVERY_S
from services.common.journal import Journal
from services.common.liveness import supervised
from services.common.loop import run_service
from services.common.runtime import ServiceContext, run


class Api:
    name = "api-view"
    topics = (*WORLD_TOPICS, TOKENS, SECRETS)
    poll_ms = 200

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.view = ApiView(clock=clock)
        self.proxy: FunctionProxy | None = None
        self.dashboard: Dashboard | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.pruning = Every(PRUNE_EVERY_S)
        self.peers: ApiPeers | None = None
        self.peers_task: asyncio.Task[None] | None = None
        self.leaving = asyncio.Event()
        """Set when the api stops: it leaves its peers' group, handing its shares on."""

    def add_routes(self, ctx: ServiceContext) -> None:
        settings = self.settings
        journal = Journal(ctx.producer, apply=self.apply, clock=self.clock)
        control = ControlPlane(
            view=self.view,
            journal=journal,
            token=settings.token,
            max_body_bytes=settings.max_body_bytes,
            max_functions=settings.max_functions,
        )
        control.more.extend(TokenRoutes(self.view, control.read_json, control.record).routes())
        secrets = SecretRoutes(self.view, control.read_json, control.record, settings.sealing_key)
        control.more.extend(secrets.routes())
        control.seal_for = secrets.seal_for
        control.more.extend(
            TrafficRoutes(
                self.view, control.read_json, control.record, control.function_or_404
            ).routes()
        )
        ctx.metrics_reader = control.may_read_metrics  # the api's port is its public one
        upstream = Upstream(connect_timeout_s=settings.connect_timeout_s)
        self.view.left = upstream.forget
        self.proxy = FunctionProxy(
            view=self.view,
            journal=journal,
            upstream=upstream,
            log=ctx.log,
            source_instance=ctx.settings.instance,
            queue_limit=settings.queue_limit,
            demand_repeat_s=settings.demand_repeat_s,
            principal=control.principal_in,
            carries_token=control.carries_token,
            bodies=BodyBudget(settings.body_budget_bytes),
            clock=self.clock.now,
            peer_proof=peer_proof(settings.token),
        )
        self.peers = ApiPeers(
            ctx.settings.bus,
            instance=ctx.settings.instance,
            url=settings.peer_url,
            routes=self.view.routes,
            log=ctx.log,
            clock=self.clock.now,
            woken=self.view.notify_all,
            session_s=ctx.settings.leader_session_s,
            handoff_s=settings.handoff_s,
            beat=lambda: ctx.liveness.beat("api-peers", within_s=PEERS_STALL_S),
        )
        self.dashboard = Dashboard(
            view=self.view, principal_for=control.principal_for, log=ctx.log, clock=self.clock
        )
        ctx.app.middlewares.append(until_ready(ctx))
        ctx.sites.append((self.dashboard.application(), settings.dashboard_port))
        ctx.app.add_subapp("/v1", control.application())
        for path in ("/fn/{name}", "/fn/{name}/{path:.*}"):
            ctx.app.router.add_route("*", path, aiohttp_route(self.proxy.handle))
        ctx.listener = Front(
            partial(lean_call, ctx, self.proxy), keepalive_s=ctx.settings.keepalive_s, log=ctx.log
        )
        ctx.app.on_cleanup.append(lambda _: _close(upstream))

    def apply(self, envelope: Envelope) -> None:
        if self.view.apply(envelope) and self.dashboard is not None:
            self.dashboard.observe(envelope)

    async def on_ready(self, ctx: ServiceContext) -> None:
        assert self.dashboard is not None
        self.view.world.shift(self.view.hearing.go_live())
        assert self.peers is not None
        loops = {
            "request-stats": partial(self._publish_stats, ctx),
            "dashboard": partial(self.dashboard.run, ctx),
        }
        self.tasks = [
            asyncio.create_task(supervised(name, work, log=ctx.log, stop=ctx.stop))
            for name, work in loops.items()
        ]
        self.peers_task = asyncio.create_task(
            supervised(
                "api-peers", partial(self.peers.run, self.leaving), log=ctx.log, stop=self.leaving
            )
        )
        try:  # ready once it holds its shares of the replicas' limits (or gives up waiting)
            await asyncio.wait_for(self.peers.sharing.wait(), FIRST_SHARES_S)
        except TimeoutError:
            ctx.log.warning("ready without shares: functions with a concurrency limit wait")
        ctx.log.info("api ready", functions=len(self.view.world.functions.functions))

    async def after_poll(self, ctx: ServiceContext) -> None:
        now = self.clock.now()
        if self.pruning.due(now):
            assert self.proxy is not None
            for name in self.view.world.prune(now - FORGET_AFTER_S):
                self.proxy.forget(name)

    async def run(self, ctx: ServiceContext) -> None:
        try:
            await run_service(ctx, self)
        finally:
            self.leaving.set()
            if self.peers_task is not None:  # shares handed on before the process ends
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.peers_task, timeout=10)
            for task in self.tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _publish_stats(self, ctx: ServiceContext) -> None:
        assert self.proxy is not None
        interval = self.settings.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            ctx.liveness.beat("request-stats", within_s=max(60.0, 10 * interval))
            now = self.clock.now()
            for key in list(self.proxy.windows):
                name, revision = key
                function = self.view.function(name)
                if function is None:
                    del self.proxy.windows[key]
                    continue
                window = self.proxy.windows[key]
                snap = window.snapshot(now)
                if revision not in function.traffic.kept() and window.idle(snap):
                    del self.proxy.windows[key]  # said zero once: a revision that serves no more
                waiting = self.proxy.waiting.get(name)
                stats = RequestStats(
                    function=name,
                    revision=revision,
                    api_instance=ctx.settings.instance,
                    interval_s=interval,
                    requests=snap.requests,
                    errors=snap.errors,
                    mean_concurrency=snap.mean_concurrency,
                    peak_concurrency=snap.peak_concurrency,
                    queue_depth=waiting.count if waiting else 0,
                    latency_buckets=snap.latency_buckets,
                    latency_fine=snap.latency_fine,
                )
                await ctx.producer.send(ctx.producer.envelope(stats))


GATED = ("/fn/", "/v1/")


FIRST_SHARES_S = 15.0
"""How long a starting api waits to join its peers before it says it is ready anyway."""
PEERS_STALL_S = 60.0
"""A membership of the api's group that has not worked this long fails /healthz."""


def until_ready(ctx: ServiceContext) -> Middleware:
    """503 with Retry-After on the control plane and the request path until the api has
    caught up with the log: never an answer (such as 404) from a half-built view."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not ctx.ready and request.path.startswith(GATED):
            return starting()
        return await handler(request)

    return gate


async def lean_call(ctx: ServiceContext, proxy: FunctionProxy, call: Incoming, sink: Sink) -> None:
    """A call the lean front took: the request path's, once the api is ready (the gate
    `until_ready` keeps on aiohttp's server)."""
    if not ctx.ready:
        return await sink.whole(Whole.of(starting()))
    await proxy.handle(call, sink)


def starting() -> web.Response:
    """503 while the api reads the log back."""
    return web.json_response(
        {"error": "the api is starting: it is reading the log; try again shortly"},
        status=503,
        headers={"Retry-After": "1"},
    )


async def _close(upstream: Upstream) -> None:
    upstream.close()


def main() -> None:
    api = Api(Settings.from_env(os.environ))
    run(api.settings.common, api.run, api.add_routes)
