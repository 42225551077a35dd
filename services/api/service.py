"""The api process: the view fed from Kafka, the control plane, the request path, and the
request statistics it publishes every tick for the autoscaler."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from events.bus import EventConsumer
from events.envelope import Envelope
from events.topics import FUNCTIONS, HEARTBEATS, NODES, REPLICAS, SCALE
from events.types import RequestStats
from services.api.control import ControlPlane
from services.api.dashboard import Dashboard
from services.api.proxy import FunctionProxy
from services.api.settings import Settings
from services.api.upstream import Upstream
from services.api.view import ApiView
from services.common.runtime import ServiceContext, run


class Api:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.view = ApiView()
        self.control: ControlPlane | None = None
        self.proxy: FunctionProxy | None = None
        self.dashboard: Dashboard | None = None

    def add_routes(self, ctx: ServiceContext) -> None:
        settings = self.settings
        self.control = ControlPlane(
            view=self.view,
            producer=ctx.producer,
            token=settings.token,
            max_body_bytes=settings.max_body_bytes,
        )
        upstream = Upstream(connect_timeout_s=settings.connect_timeout_s)
        self.proxy = FunctionProxy(
            view=self.view,
            producer=ctx.producer,
            upstream=upstream,
            log=ctx.log,
            source_instance=ctx.settings.instance,
            queue_limit=settings.queue_limit,
            demand_repeat_s=settings.demand_repeat_s,
            connect_attempts=settings.connect_attempts,
            check_token=self.control.has_token,
        )
        self.dashboard = Dashboard(
            view=self.view,
            bus=ctx.settings.bus,
            check_token=self.control.has_token_in_query,
            log=ctx.log,
        )
        ctx.app.router.add_get("/ui", self.dashboard.page)
        ctx.app.router.add_get("/ui/stream", self.dashboard.stream)
        ctx.app.add_subapp("/v1", self.control.application())
        ctx.app.router.add_route("*", "/fn/{name}", self.proxy.handle)
        ctx.app.router.add_route("*", "/fn/{name}/{path:.*}", self.proxy.handle)
        ctx.app.on_cleanup.append(lambda _: _close(upstream))

    async def run(self, ctx: ServiceContext) -> None:
        consumer = EventConsumer(
            ctx.settings.bus,
            name="api-view",
            topics=[FUNCTIONS, REPLICAS, SCALE, NODES, HEARTBEATS],
            handler=self.on_event,
            dead_letters=ctx.producer,
        )
        await consumer.start()
        try:
            await consumer.catch_up()
            ctx.ready = True
            ctx.log.info("api ready", functions=len(self.view.cluster.functions))
            assert self.dashboard is not None
            tasks = [
                asyncio.create_task(self._publish_stats(ctx)),
                asyncio.create_task(self.dashboard.run(ctx.stop)),
            ]
            try:
                while not ctx.stop.is_set():
                    await consumer.poll_once()
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await consumer.stop()

    async def on_event(self, envelope: Envelope) -> None:
        await self.view.on_event(envelope)
        if self.dashboard is not None:
            self.dashboard.observe(envelope)

    async def _publish_stats(self, ctx: ServiceContext) -> None:
        assert self.proxy is not None
        interval = self.settings.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for name in list(self.proxy.windows):
                if self.view.function(name) is None:
                    del self.proxy.windows[name]
                    continue
                snap = self.proxy.windows[name].snapshot(now)
                waiting = self.proxy.waiting.get(name)
                await ctx.producer.send(
                    ctx.producer.envelope(
                        RequestStats(
                            function=name,
                            api_instance=ctx.settings.instance,
                            interval_s=interval,
                            requests=snap.requests,
                            errors=snap.errors,
                            mean_concurrency=snap.mean_concurrency,
                            peak_concurrency=snap.peak_concurrency,
                            queue_depth=waiting.count if waiting else 0,
                            latency_buckets=snap.latency_buckets,
                        )
                    )
                )


async def _close(upstream: Upstream) -> None:
    upstream.close()


def main() -> None:
    api = Api(Settings.from_env(os.environ))
    run(api.settings.common, api.run, api.add_routes)
