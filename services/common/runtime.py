"""The process shell every service runs in: HTTP /metrics, /healthz and /readyz, Kafka
topics and producer ready before the service body starts, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import uvloop
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from events.bus import EventProducer, ensure_topics
from services.common.clock import SYSTEM_CLOCK
from services.common.leadership import Leadership
from services.common.liveness import Liveness
from services.common.logs import StructLog, configure_logging
from services.common.settings import CommonSettings

MAX_LINE_BYTES = 8190
"""The longest request line or header line a service accepts (431 or 400 past it)."""
MAX_HEADERS = 100


class Listener(Protocol):
    """A listener's own protocol in front of aiohttp's (the api's lean request path)."""

    def protocol(
        self, fallback: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]: ...

    async def shutdown(self) -> None: ...


@dataclass
class ServiceContext:
    """What a service body gets: its settings, a started producer, the stop signal, and
    the liveness its loops report."""

    settings: CommonSettings
    producer: EventProducer
    log: StructLog
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: bool = False
    app: web.Application = field(default_factory=web.Application)
    liveness: Liveness = field(default_factory=lambda: Liveness(SYSTEM_CLOCK))
    metrics_reader: Callable[[web.Request], bool] | None = None
    """Who may read /metrics, where it is not everyone (the api's public port)."""
    leadership: Leadership | None = None
    """A decider's election: it acts only while it leads (`services.common.leadership`)."""
    sites: list[tuple[web.Application, int]] = field(default_factory=list)
    """More listeners: an application on a port of its own (the api's dashboard, so that
    it is an origin apart from the functions' pages)."""
    listener: Listener | None = None
    """The main port's protocol, when aiohttp's is not the first to read a connection."""

    @property
    def epoch(self) -> int:
        """The epoch this instance leads its role with (0 for a service not elected)."""
        return self.leadership.epoch if self.leadership is not None else 0


ServiceBody = Callable[[ServiceContext], Coroutine[Any, Any, None]]
ServiceRoutes = Callable[[ServiceContext], None]


def _add_common_routes(ctx: ServiceContext) -> None:
    async def metrics(request: web.Request) -> web.Response:
        if ctx.metrics_reader is not None and not ctx.metrics_reader(request):
            body = {"error": "metrics need a read token: 'Authorization: Bearer <token>'"}
            return web.json_response(body, status=401)
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        stalled = ctx.liveness.stalled()
        if stalled:
            body = {"status": "stalled", "service": ctx.settings.service, "loops": stalled}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ok", "service": ctx.settings.service})

    async def readyz(_: web.Request) -> web.Response:
        if ctx.ready:
            return web.json_response({"ready": True})
        body = {"ready": False, "why": "reading the log back; not caught up yet"}
        return web.json_response(body, status=503, headers={"Retry-After": "1"})

    ctx.app.add_routes(
        [web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)]
    )


Closer = Callable[[], Coroutine[Any, Any, None]]


async def _listen(
    app: web.Application, settings: CommonSettings, port: int, listener: Listener | None = None
) -> Closer:
    """Serve `app` on the service's host at `port`, with the service's HTTP limits (behind
    `listener` when there is one); what closes it."""
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=5.0,
        handler_cancellation=True,
        keepalive_timeout=settings.keepalive_s,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_LINE_BYTES,
        max_headers=MAX_HEADERS,
    )
    await runner.setup()
    reuse_port = settings.reuse_port or None
    if listener is None:
        site = web.TCPSite(
            runner, settings.http_host, port, reuse_port=reuse_port, backlog=settings.backlog
        )
        await site.start()
        return runner.cleanup
    assert runner.server is not None
    server = await asyncio.get_running_loop().create_server(
        listener.protocol(runner.server),
        settings.http_host,
        port,
        reuse_port=reuse_port,
        backlog=settings.backlog,
    )

    async def close() -> None:
        server.close()
        await listener.shutdown()
        await runner.cleanup()

    return close


async def serve(
    settings: CommonSettings, body: ServiceBody, routes: ServiceRoutes | None = None
) -> None:
    """Run one service until SIGTERM/SIGINT or until its body returns. `routes` adds the
    service's own HTTP routes (the api's) to the server beside /metrics and the probes."""
    log = StructLog(f"shoal.{settings.service}")
    producer = EventProducer(settings.bus, source=settings.source, role=settings.service)
    ctx = ServiceContext(settings=settings, producer=producer, log=log)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stop.set)
    log.info("waiting for kafka", bootstrap=settings.bus.bootstrap_servers)
    if settings.bus.role is None:  # a role's principal may not make topics: the operator's did
        await ensure_topics(settings.bus)
    await producer.start()
    closers: list[Closer] = []
    try:
        _add_common_routes(ctx)
        if routes is not None:
            routes(ctx)
        body_task = asyncio.create_task(body(ctx), name=f"{settings.service}-body")
        closers.append(await _listen(ctx.app, settings, settings.http_port, ctx.listener))
        for app, port in ctx.sites:
            closers.append(await _listen(app, settings, port))
        log.info("started", instance=settings.instance, http_port=settings.http_port)
        stop_task = asyncio.create_task(ctx.stop.wait())
        done, _ = await asyncio.wait({body_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        ctx.stop.set()
        if body_task in done:
            body_task.result()
        else:
            try:
                await asyncio.wait_for(body_task, timeout=30)
            except TimeoutError:
                log.warning("body did not stop within 30 s; cancelled")
        stop_task.cancel()
    finally:
        for close in closers:
            await close()
        await producer.stop()
        log.info("stopped", instance=settings.instance)


def run(settings: CommonSettings, body: ServiceBody, routes: ServiceRoutes | None = None) -> None:
    """Entry point of a service process."""
    configure_logging(settings.log_level, service=settings.service)
    uvloop.run(serve(settings, body, routes))
