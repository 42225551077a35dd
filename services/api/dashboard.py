"""The live dashboard at /ui, on a port of its own (SHOAL_API_DASHBOARD_PORT): a page, and
a server-sent event stream of the cluster fed from Kafka (functions, nodes, the latest
events, and per-function series of request rate, concurrency, CPU and replicas with the
scale decisions on them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from events.envelope import Envelope
from events.lifecycle import ReplicaState
from events.projections.replicas import ReplicaView
from events.timeline import entry
from events.topics import CONTAINER_STATS, REQUEST_STATS
from events.types import ContainerStats, NodeHeartbeat, RequestStats, ScaleDecision
from services.api.auth import Principal, bearer
from services.api.view import ApiView
from services.common.clock import Clock
from services.common.logs import StructLog
from services.common.loop import follow
from services.common.runtime import ServiceContext

UI = Path(__file__).parent / "ui"
PAGE = UI / "index.html"
SESSION_COOKIE = "shoal_session"
"""Holds a reader's token for /ui only: HttpOnly (no script reads it), SameSite=Strict, and
named so that the request path never passes it to a function."""
SESSION_S = 12 * 3600
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
UI_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_LOGIN_BYTES = 4096
HISTORY_S = 600
RECENT_EVENTS = 60
CPU_FRESH_S = 5.0


@web.middleware
async def own_page_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Fetch Metadata: a request another origin's page made (a function's, say) is refused,
    whatever cookie the browser sent with it; only a navigation may arrive from elsewhere."""
    site = request.headers.get("Sec-Fetch-Site", "none")
    navigation = request.method == "GET" and request.headers.get("Sec-Fetch-Mode") == "navigate"
    if site not in ("same-origin", "none") and not navigation:
        body = {"error": "the dashboard answers its own page only (open it at /ui)"}
        return web.json_response(body, status=403)
    return await handler(request)


@dataclass
class Point:
    t: float
    rps: float
    concurrency: float
    cpu_pct: float | None
    ready: int
    desired: int | None


@dataclass
class Series:
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=HISTORY_S))
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    requests: float = 0.0
    """Requests reported since the last point, from every api instance."""
    concurrency: dict[str, float] = field(default_factory=dict)
    """"api instance/revision" -> its latest mean concurrency."""
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    """replica -> (time, CPU fraction of its limit)."""


@dataclass
class Dashboard:
    view: ApiView
    principal_for: Callable[[str], Principal | None]
    """Who a token is: the dashboard shows what a reader may see."""
    log: StructLog
    clock: Clock
    series: dict[str, Series] = field(default_factory=dict)
    recent: deque[Envelope] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    """The latest events, turned into audit lines only when a page asks (cheap on replay)."""
    subscribers: set[asyncio.Queue[str]] = field(default_factory=set)

    def _series(self, function: str) -> Series:
        return self.series.setdefault(function, Series())

    def observe(self, envelope: Envelope) -> None:
        """Every event the api's view reads, and the stats the dashboard reads itself."""
        data = envelope.data
        if isinstance(data, RequestStats):
            series = self._series(data.function)
            series.requests += data.requests
            series.concurrency[f"{data.api_instance}/{data.revision}"] = data.mean_concurrency
            return
        if isinstance(data, ContainerStats):
            self._series(data.function).cpu[data.replica_id] = (
                self.clock.now(),
                data.cpu_fraction,
            )
            return
        if isinstance(data, NodeHeartbeat):
            return
        self.recent.append(envelope)
        if isinstance(data, ScaleDecision):
            marker = {
                "t": envelope.time.timestamp(),
                "previous": data.previous,
                "desired": data.desired,
                "panic": data.panic,
                "reason": data.reason,
            }
            self._series(data.function).decisions.append(marker)
            self._publish("decision", {"function": data.function, **marker})
        if self.subscribers:
            self._publish("event", entry(envelope).as_json())

    def sample(self, t: float, now: float, interval_s: float) -> dict[str, Any]:
        """One point per function (the last `interval_s`), at time of day `t`; `now` is the
        monotonic clock CPU samples were heard on."""
        ready: Counter[str] = Counter(
            r.function for r in self.view.world.replicas.live() if r.state is ReplicaState.READY
        )
        functions = {}
        for name in [n for n in self.series if self.view.function(n) is None]:
            del self.series[name]
        for name, view in sorted(self.view.world.functions.functions.items()):
            if view.deleted:
                continue
            series = self._series(name)
            series.cpu = {r: s for r, s in series.cpu.items() if now - s[0] <= CPU_FRESH_S}
            fresh = [fraction for _, fraction in series.cpu.values()]
            point = Point(
                t=t,
                rps=round(series.requests / interval_s, 2),
                concurrency=round(sum(series.concurrency.values()), 2),
                cpu_pct=round(100 * sum(fresh) / len(fresh), 1) if fresh else None,
                ready=ready[name],
                desired=view.desired,
            )
            series.requests = 0.0
            series.points.append(point)
            functions[name] = {
                "revision": view.revision,
                "image": view.spec.image,
                "traffic": view.traffic.summary(),
                **point.__dict__,
            }
        return {"t": t, "functions": functions}

    def nodes(self) -> list[dict[str, Any]]:
        on_node: dict[str, list[ReplicaView]] = defaultdict(list)
        for replica in self.view.world.replicas.live():
            on_node[replica.node].append(replica)
        found = []
        for name, node in sorted(self.view.world.nodes.nodes.items()):
            replicas = on_node.get(name, [])
            found.append(
                {
                    "node": name,
                    "condition": node.condition,
                    "cpus": node.capacity.cpus if node.capacity else None,
                    "memory_mb": node.capacity.memory_mb if node.capacity else None,
                    "used_cpus": node.used_cpus,
                    "used_memory_mb": node.used_memory_mb,
                    "replicas": sorted(f"{r.function}/{r.replica_id}" for r in replicas),
                }
            )
        return found

    def snapshot(self) -> dict[str, Any]:
        return {
            "series": {
                name: {
                    "points": [p.__dict__ for p in series.points],
                    "decisions": list(series.decisions),
                }
                for name, series in self.series.items()
            },
            "events": [entry(e).as_json() for e in self.recent],
            "nodes": self.nodes(),
        }

    def _publish(self, kind: str, data: object) -> None:
        message = f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
        for queue in list(self.subscribers):
            if queue.qsize() < 1000:
                queue.put_nowait(message)

    async def run(self, ctx: ServiceContext, interval_s: float = 1.0) -> None:
        """Follow the stats topics and send a tick to every page each interval."""
        follower = asyncio.create_task(self._follow_stats(ctx))
        try:
            while not ctx.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.stop.wait(), interval_s)
                tick = self.sample(self.clock.wall().timestamp(), self.clock.now(), interval_s)
                if self.subscribers:
                    self._publish("tick", {**tick, "nodes": self.nodes()})
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def _follow_stats(self, ctx: ServiceContext) -> None:
        """Read the stats topics from a few seconds ago on; start again if Kafka fails."""
        topics = (REQUEST_STATS, CONTAINER_STATS)
        while not ctx.stop.is_set():
            since = dict.fromkeys(topics, self.clock.wall() - timedelta(seconds=5))
            try:
                await follow(
                    ctx, name="dashboard-stats", topics=topics, apply=self.observe, since=since
                )
            except Exception as exc:  # the page goes on without stats until Kafka is back
                self.log.warning("dashboard stats feed failed; retrying", error=repr(exc))
                await asyncio.sleep(2)

    def application(self) -> web.Application:
        """The dashboard as an origin of its own (a port apart from /fn, whose pages any
        function writes), answering only its own page's requests."""
        app = web.Application(middlewares=[own_page_only])
        app.add_routes([web.get("/", self.home), *self.routes()])
        return app

    async def home(self, _: web.Request) -> web.Response:
        raise web.HTTPFound("/ui")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ui", self.page),
            web.get("/ui/{asset:dashboard\\.(?:js|css)}", self.asset),
            web.get("/ui/session", self.session),
            web.post("/ui/login", self.login),
            web.post("/ui/logout", self.logout),
            web.get("/ui/stream", self.stream),
        ]

    def allowed(self, request: web.Request) -> bool:
        """A reader's token in the session cookie, or in `Authorization` (never in a URL)."""
        found = (
            request.cookies.get(SESSION_COOKIE, ""),
            bearer(request.headers.get("Authorization", "")) or "",
        )
        return any(self._reader(token) for token in found if token)

    def _reader(self, token: str) -> bool:
        found = self.principal_for(token)
        return found is not None and found.may("read")

    async def page(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE, headers=UI_HEADERS)

    async def asset(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(UI / request.match_info["asset"], headers=UI_HEADERS)

    async def session(self, request: web.Request) -> web.Response:
        if not self.allowed(request):
            return web.json_response({"error": "log in with a read token"}, status=401)
        return web.json_response({"reader": True}, headers={"Cache-Control": "no-store"})

    async def login(self, request: web.Request) -> web.Response:
        """Trade a read-scope token (no other: the cookie holds it) for the session cookie;
        the page never keeps the token. JSON only, from this origin."""
        origin = request.headers.get("Origin")
        if request.content_type != "application/json" or (
            origin is not None and origin != f"{request.scheme}://{request.host}"
        ):
            return web.json_response({"error": "log in from the dashboard's page"}, status=403)
        raw = await request.content.read(MAX_LOGIN_BYTES + 1)
        try:
            token = json.loads(raw)["token"] if len(raw) <= MAX_LOGIN_BYTES else ""
        except (ValueError, TypeError, KeyError):
            token = ""
        token = token if isinstance(token, str) else ""
        found = self.principal_for(token)
        if found is None or found.scope != "read":
            body = {"error": "log in with a read-scope token (`shoal token create --scope read`)"}
            return web.json_response(body, status=401)
        response = web.Response(status=204)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            path="/ui",
            max_age=SESSION_S,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def logout(self, _: web.Request) -> web.Response:
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/ui")
        return response

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if not self.allowed(request):
            return web.json_response({"error": "log in at /ui with a read token"}, status=401)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.subscribers.add(queue)
        try:
            await response.write(
                f"event: snapshot\ndata: {json.dumps(self.snapshot(), default=str)}\n\n".encode()
            )
            while True:
                await response.write((await queue.get()).encode())
        except ConnectionResetError:
            pass
        finally:
            self.subscribers.discard(queue)
        return response
