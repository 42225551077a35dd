"""`shoal audit`, `shoal replay` and `shoal top`: Shoal's history and present, read from
Kafka alone."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from events import invariants
from events.envelope import Envelope
from events.errors import BusUnavailable
from events.history import HISTORY_TOPICS, METRIC_TOPICS, ReadCounts, read_all
from events.projections.snapshot import diff, snapshot, world_at
from events.settings import BusSettings
from events.timeline import Filters, timeline
from events.topics import CONTAINER_STATS, REQUEST_STATS
from events.types import ContainerStats, RequestStats
from services.cli.api_client import ApiClient, CliError
from services.cli.output import FORMATS, emit, output_option, waiting
from services.local.credentials import ADMIN, local_credentials

AGO = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """`now`, an ISO 8601 time (local time when it has no zone), or an age: 30s, 5m, 2h, 1d."""
    now = now or datetime.now(UTC)
    if text == "now":
        return now
    ago = AGO.match(text)
    if ago:
        return now - timedelta(seconds=float(ago.group(1)) * UNIT_S[ago.group(2)])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: give ISO 8601 (2026-11-24T18:00:00Z), 'now', or an age "
            "such as 30s, 5m, 2h, 1d"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


class TimeParam(click.ParamType[datetime]):
    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if isinstance(value, datetime) else parse_time(str(value))


TIME = TimeParam()


def bus() -> BusSettings:
    """The bus from SHOAL_KAFKA_* variables; with no credentials named, those of the local
    broker's admin (made by `shoal up`) when they exist."""
    environ = dict(os.environ)
    local = local_credentials(ADMIN)
    if "SHOAL_KAFKA_CREDENTIALS_FILE" not in environ and local.exists():
        environ["SHOAL_KAFKA_CREDENTIALS_FILE"] = str(local)
    return BusSettings.from_env(environ)


def read(topics: Any, since: datetime | None = None) -> list[Envelope]:
    counts = ReadCounts()
    settings = bus()
    try:
        with waiting(f"reading history from Kafka at {settings.bootstrap_servers}"):
            events = asyncio.run(read_all(settings, topics, counts, since=since))
    except BusUnavailable as exc:
        raise CliError(f"{exc}; start Kafka with `shoal up` or set SHOAL_KAFKA_BOOTSTRAP") from None
    if counts.undecodable:
        click.echo(f"shoal: skipped {counts.undecodable} undecodable record(s)", err=True)
    return events


@click.command()
@click.option("--function", help="only events about this function")
@click.option("--node", help="only events about this node")
@click.option("--since", type=TIME, help="ISO time or age (30s, 5m, 2h)")
@click.option("--until", type=TIME, help="ISO time or age")
@click.option(
    "--type",
    "types",
    multiple=True,
    help="event type, repeatable: node.lost, dev.shoal.scale.decision or ScaleDecision",
)
@click.option(
    "--metrics", is_flag=True, help="include request/container stats, demand and heartbeats"
)
@click.option(
    "--check",
    is_flag=True,
    help="check what must hold of the whole log instead (exit 1 on a violation)",
)
@click.option("--output", "-o", type=click.Choice(FORMATS), default="table", show_default=True)
def audit(
    function: str | None,
    node: str | None,
    since: datetime | None,
    until: datetime | None,
    types: tuple[str, ...],
    metrics: bool,
    check: bool,
    output: str,
) -> None:
    """The timeline across all topics in time order: who did what, and why."""
    if check:
        check_log(read(HISTORY_TOPICS), output)
        return
    topics = (*HISTORY_TOPICS, *METRIC_TOPICS) if metrics else HISTORY_TOPICS
    filters = Filters(function=function, node=node, since=since, until=until, types=types)
    entries = timeline(read(topics), filters)
    if output == "table":
        for entry in entries:
            click.echo(entry.line())
        return
    emit([e.as_json() for e in entries], output)


def check_log(events: list[Envelope], output: str) -> None:
    """`shoal audit --check`: each rule, what it looked at, and every violation."""
    found = invariants.check(events)
    if output != "table":
        emit(
            {"checked": found.checked, "violations": [asdict(v) for v in found.violations]}, output
        )
    else:
        click.echo(f"checked {len(events)} events")
        for rule, count in found.checked.items():
            against = sum(1 for v in found.violations if v.rule == rule)
            click.echo(f"  {rule:<24} {count:>7} checked  {against or 'ok'}")
        for violation in found.violations:
            ids = ", ".join(violation.events)
            click.echo(f"VIOLATION {violation.rule}: {violation.text} (events {ids})")
    if found.violations:
        sys.exit(1)


@click.command()
@click.option("--at", "at", type=TIME, help="the state as it was then (default: now)")
@click.option(
    "--diff", "between", type=(TIME, TIME), help="what changed from the first time to the second"
)
@output_option
def replay(at: datetime | None, between: tuple[datetime, datetime] | None, output: str) -> None:
    """The whole cluster state at a time, rebuilt from Kafka alone."""
    events = read(HISTORY_TOPICS)
    if between is not None:
        before, after = (snapshot(world_at(events, t)) for t in between)
        changes = diff(before, after)
        if output == "table":
            for line in changes or ["no change"]:
                click.echo(line)
        else:
            emit(changes, output)
        return
    state = snapshot(world_at(events, at))
    if output != "table":
        emit(state, output)
        return
    when = at.isoformat(timespec="seconds") if at else "now"
    sections = (
        (
            "functions",
            (
                ("FUNCTION", "key"),
                ("REVISION", "revision"),
                ("IMAGE", "image"),
                ("DESIRED", "desired"),
                ("READY", "ready"),
                ("LAST DECISION", "last_decision"),
            ),
        ),
        (
            "replicas",
            (
                ("REPLICA", "key"),
                ("FUNCTION", "function"),
                ("REVISION", "revision"),
                ("NODE", "node"),
                ("STATE", "state"),
            ),
        ),
        (
            "nodes",
            (
                ("NODE", "key"),
                ("CONDITION", "condition"),
                ("CPUS", "cpus"),
                ("MEMORY MB", "memory_mb"),
                ("REPLICAS", "replicas"),
            ),
        ),
    )
    for section, columns in sections:
        rows = [{"key": key, **values} for key, values in state[section].items()]
        emit(rows, "table", columns, title=f"{section} at {when}")
        click.echo()


@click.command()
@click.option("--window-s", default=5.0, show_default=True, help="seconds of stats to average")
@click.option("--watch", is_flag=True, help="refresh every 2 s until interrupted")
@output_option
def top(window_s: float, watch: bool, output: str) -> None:
    """Live replicas, requests per second and CPU of each function."""
    api = ApiClient.from_env()
    while True:
        rows = top_rows(api, window_s)
        if watch and output == "table":
            click.clear()
        emit(
            rows,
            output,
            (
                ("FUNCTION", "function"),
                ("READY", "ready"),
                ("DESIRED", "desired"),
                ("RPS", "rps"),
                ("CONCURRENCY", "concurrency"),
                ("CPU % OF LIMIT", "cpu_pct"),
                ("MEMORY MiB", "memory_mib"),
            ),
        )
        if not watch:
            return
        time.sleep(2)


def top_rows(api: ApiClient, window_s: float) -> list[dict[str, Any]]:
    functions = api.call("GET", "/functions")["functions"]
    since = datetime.now(UTC) - timedelta(seconds=window_s)
    stats = read((REQUEST_STATS, CONTAINER_STATS), since=since)
    requests: dict[str, float] = defaultdict(float)
    concurrency: dict[str, float] = defaultdict(float)
    """Function -> calls in flight x seconds, summed over every api instance and revision."""
    usage: dict[str, dict[str, ContainerStats]] = defaultdict(dict)
    for envelope in sorted(stats, key=lambda e: e.time):
        data = envelope.data
        if isinstance(data, RequestStats):
            requests[data.function] += data.requests
            concurrency[data.function] += data.mean_concurrency * data.interval_s
        elif isinstance(data, ContainerStats):
            usage[data.function][data.replica_id] = data
    rows = []
    for f in functions:
        name = f["name"]
        latest = usage.get(name, {}).values()
        rows.append(
            {
                "function": name,
                "ready": f["ready"],
                "desired": f["desired"],
                "rps": round(requests.get(name, 0.0) / window_s, 1),
                "concurrency": round(concurrency.get(name, 0.0) / window_s, 1),
                "cpu_pct": round(100 * sum(s.cpu_fraction for s in latest) / len(latest), 1)
                if latest
                else None,
                "memory_mib": round(sum(s.memory_bytes for s in latest) / 2**20, 1)
                if latest
                else None,
            }
        )
    return rows
