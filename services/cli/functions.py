"""`shoal deploy | ls | describe | delete | invoke | scale | rollback | logs`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import docker
import yaml

from services.cli.api_client import ApiClient, CliError
from services.cli.output import emit, output_option, waiting
from services.cli.spec_flags import given, spec_flags
from services.cli.traffic import traffic_facts
from services.common.labels import LABEL_FUNCTION, LABEL_REPLICA

LIST_COLUMNS = (
    ("NAME", "name"),
    ("REVISION", "revision"),
    ("IMAGE", "image"),
    ("DESIRED", "desired"),
    ("READY", "ready"),
    ("LAST DECISION", "decision"),
)


def spec_from(name: str | None, spec_file: str | None, flags: dict[str, Any]) -> dict[str, Any]:
    """A spec from a file, with the flags given on top, named NAME when given."""
    spec: dict[str, Any] = {}
    if spec_file:
        try:
            loaded = yaml.safe_load(Path(spec_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise click.BadParameter(f"cannot read {spec_file}: {exc}", param_hint="-f") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter(
                f"{spec_file} must hold one mapping (a function spec)", param_hint="-f"
            )
        spec.update(loaded)
    flagged = given(flags)
    if "env" in flagged:
        flagged["env"] = {**spec.get("env", {}), **flagged["env"]}
    spec.update(flagged)
    if name:
        spec["name"] = name
    if "name" not in spec:
        raise click.UsageError("give the function's NAME, or a spec file with a name")
    return spec


@click.command()
@click.argument("name", required=False)
@click.option("-f", "--file", "spec_file", help="a function spec, YAML or JSON")
@spec_flags
@click.option("--no-wait", is_flag=True, help="return once accepted, not when ready")
@click.option("--wait-s", default=120.0, show_default=True, help="how long to wait for ready")
@output_option
def deploy(
    name: str | None,
    spec_file: str | None,
    no_wait: bool,
    wait_s: float,
    output: str,
    **flags: Any,
) -> None:
    """Deploy a function, or a new revision of it, and wait until it is ready."""
    api = ApiClient.from_env()
    spec = spec_from(name, spec_file, flags)
    existing = api.call("GET", f"/functions/{spec['name']}", missing_ok=True)
    if existing is None:
        status = api.call("POST", "/functions", spec)
    else:
        merged = {**existing["spec"], **spec}
        status = api.call("PUT", f"/functions/{spec['name']}", merged)
        spec = merged
    revision = max(status["revisions"])
    if not no_wait:
        status = wait_ready(api, spec, revision, wait_s)
    if output == "table":
        click.echo(
            f"{spec['name']} revision {revision}: {status['ready']} ready "
            f"(call it: {api.url}/fn/{spec['name']}/)"
        )
    else:
        emit(status, output)


def wait_ready(
    api: ApiClient, spec: dict[str, Any], revision: int, wait_s: float
) -> dict[str, Any]:
    name = spec["name"]
    wanted = max(int(spec.get("min_replicas", 0)), 1 if spec.get("initial_scale", 1) else 0)
    deadline = time.monotonic() + wait_s
    with waiting(f"waiting for {name} revision {revision}") as show:
        while True:
            status: dict[str, Any] = api.call("GET", f"/functions/{name}")
            ready = [
                r for r in status["replicas"] if r["revision"] == revision and r["state"] == "ready"
            ]
            show(f"{name} revision {revision}: {len(ready)}/{wanted} ready")
            if status["revision"] != revision and status["rollback_reason"]:
                raise CliError(
                    f"revision {revision} of {name} was rolled back: {status['rollback_reason']}"
                )
            if len(ready) >= wanted:
                return status
            if time.monotonic() > deadline:
                failure = status["failures"]["last"] or status["pending"]["reason"]
                raise CliError(
                    f"{name} revision {revision} not ready after {wait_s:g} s"
                    + (f" (last problem: {failure})" if failure else "")
                    + f"; see `shoal describe {name}` and `shoal audit --function {name}`"
                )
            time.sleep(0.25)


@click.command(name="ls")
@output_option
def list_functions(output: str) -> None:
    """List the functions."""
    functions = ApiClient.from_env().call("GET", "/functions")["functions"]
    rows = [
        {
            **f,
            "image": f["spec"]["image"],
            "decision": (f["last_decision"] or {}).get("reason"),
        }
        for f in functions
    ]
    emit(functions, output, LIST_COLUMNS, rows)


@click.command()
@click.argument("name")
@output_option
def describe(name: str, output: str) -> None:
    """A function's revisions, replicas, last scale decision and problems."""
    status = ApiClient.from_env().call("GET", f"/functions/{name}")
    if output != "table":
        emit(status, output)
        return
    decision = status["last_decision"] or {}
    facts = [
        ("name", status["name"]),
        ("revision", f"{status['revision']} of {status['revisions']}"),
        ("image", status["spec"]["image"]),
        ("desired / ready", f"{status['desired']} / {status['ready']}"),
        ("manual replicas", status["manual_replicas"]),
        ("last decision", decision.get("reason")),
        ("rolled back", status["rollback_reason"] or None),
        ("failures since ready", status["failures"]["since_last_ready"]),
        ("last failure", status["failures"]["last"] or None),
        ("pending", status["pending"]["reason"] or None),
        *traffic_facts(status["traffic"]),
    ]
    for key, value in facts:
        click.echo(f"{key + ':':<22}{'-' if value is None else value}")
    click.echo()
    emit(
        status["replicas"],
        "table",
        (("REPLICA", "id"), ("REVISION", "revision"), ("NODE", "node"), ("STATE", "state")),
    )


@click.command()
@click.argument("name")
def delete(name: str) -> None:
    """Delete a function (its replicas drain)."""
    ApiClient.from_env().call("DELETE", f"/functions/{name}")
    click.echo(f"{name} deleted; its replicas drain")


@click.command()
@click.argument("name")
@click.argument("replicas", type=click.IntRange(min=0))
def scale(name: str, replicas: int) -> None:
    """Pin a function at a number of replicas (until its next revision or scaling change)."""
    ApiClient.from_env().call("POST", f"/functions/{name}/scale", {"replicas": replicas})
    click.echo(f"{name} pinned at {replicas} replicas")


@click.command()
@click.argument("name")
@click.argument("revision", type=click.IntRange(min=1))
def rollback(name: str, revision: int) -> None:
    """Make an earlier revision current again."""
    ApiClient.from_env().call("POST", f"/functions/{name}/rollback", {"revision": revision})
    click.echo(f"{name} rolled back to revision {revision}")


@click.command()
@click.argument("name")
@click.argument("path", default="")
@click.option("-X", "--method", default="GET", show_default=True)
@click.option("-d", "--data", help="request body; @FILE reads a file, @- standard input")
@click.option("-H", "--header", multiple=True, help="'Name: value', repeatable")
@click.option("-i", "--include", is_flag=True, help="print the status and headers too")
@click.option(
    "--token",
    envvar="SHOAL_INVOKE_TOKEN",
    help="a token that may call this private function (never the api token by default)",
)
def invoke(
    name: str,
    path: str,
    method: str,
    data: str | None,
    header: tuple[str, ...],
    include: bool,
    token: str | None,
) -> None:
    """Call a function through the api; exit 1 when it answers 4xx or 5xx."""
    headers = {}
    for line in header:
        key, sep, value = line.partition(":")
        if not sep:
            raise click.BadParameter(f"{line!r} is not 'Name: value'", param_hint="-H")
        headers[key.strip()] = value.strip()
    body: bytes | None = None
    if data is not None:
        if data == "@-":
            body = sys.stdin.buffer.read()
        elif data.startswith("@"):
            body = Path(data[1:]).read_bytes()
        else:
            body = data.encode()
    status, reply_headers, reply = ApiClient.from_env().invoke(
        name, path, method.upper(), body, headers, token=token
    )
    if include:
        click.echo(f"HTTP {status}")
        for key, value in reply_headers.items():
            click.echo(f"{key}: {value}")
        click.echo()
    sys.stdout.buffer.write(reply)
    sys.stdout.flush()
    if status >= 400:
        click.echo(f"shoal: {name} answered {status}", err=True)
        sys.exit(1)


@click.command()
@click.argument("name")
@click.option("--replica", help="one replica's id (default: every replica on this host)")
@click.option("--tail", default=50, show_default=True, help="lines per replica")
def logs(name: str, replica: str | None, tail: int) -> None:
    """A function's replica logs, from Docker on this host."""
    try:
        client = docker.from_env()
        label = f"{LABEL_REPLICA}={replica}" if replica else f"{LABEL_FUNCTION}={name}"
        containers = client.containers.list(all=True, filters={"label": label})
    except docker.errors.DockerException as exc:
        raise CliError(f"cannot reach Docker ({exc}); is dockerd running?") from None
    if not containers:
        raise CliError(
            f"no replica of {name} runs on this host; "
            f"`shoal describe {name}` shows where they run, and `shoal audit --function "
            f"{name} --type replica.failed` the last logs of failed ones"
        )
    for container in containers:
        rid = container.labels.get(LABEL_REPLICA, container.name)
        lines = container.logs(tail=tail).decode(errors="replace").splitlines()
        click.echo(f"== {rid} ({container.status}, {len(lines)} line(s)) ==")
        for line in lines:
            click.echo(f"[{rid}] {line}")
