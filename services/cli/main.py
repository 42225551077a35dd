"""`shoal`: run the local platform, manage functions and nodes, and read the history."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import click
import docker

from events.bus import ensure_topics
from events.errors import BusUnavailable
from events.settings import BusSettings
from services.cli import (
    functions,
    history,
    kafka,
    lab,
    nodes,
    secret_commands,
    tokens,
    traffic,
)
from services.common.labels import LABEL_NODE
from services.common.sealing import KEY_VARIABLE, make_key
from services.common.settings import env_int
from services.local.credentials import ADMIN, role_of
from services.local.images import ensure_test_images as ensure_images
from services.local.kafka_broker import BrokerError, BrokerLayout, LocalKafkaBroker
from services.local.paths import kafka_data_dir, private_dir, state_dir, token_file
from services.local.processes import (
    MOST_INSTANCES,
    SCALED_MODULES,
    ServiceProcess,
    built_services,
    known_services,
)

DEMO = {
    "name": "hello",
    "image": "shoal-test/hello:1",
    "min_replicas": 0,
    "initial_scale": 1,
    "cpu": 0.25,
    "memory_mb": 32,
    "target": 10,
}


def local_broker() -> LocalKafkaBroker:
    port = env_int(os.environ, "SHOAL_KAFKA_PORT", 9092)
    return LocalKafkaBroker(
        BrokerLayout(
            data_dir=kafka_data_dir(),
            port=port,
            controller_port=env_int(os.environ, "SHOAL_KAFKA_CONTROLLER_PORT", port + 1),
        )
    )


def sealing_key_file() -> Path:
    """The local sealing key of secrets, made once in the state folder (0400): it is never
    on Kafka, so the log can be read without revealing a secret."""
    path = Path(state_dir()) / "secrets.key"
    make_key(path)
    return path


def api_token() -> str:
    """The local api's bearer token, made once and kept in the state folder."""
    return token_file(Path(state_dir()) / "api-token")


def fail(message: str) -> None:
    click.echo(f"shoal: {message}", err=True)
    sys.exit(1)


@click.group()
def cli() -> None:
    """Shoal: serverless-style containers on plain Docker hosts."""


@cli.command()
@click.option(
    "--instances",
    type=click.IntRange(1, MOST_INSTANCES),
    default=2,
    show_default=True,
    help="instances of the api and of each decider (scheduler, autoscaler, healer): the "
    "apis share the load, one instance of each decider leads at a time",
)
def up(instances: int) -> None:
    """Start Kafka and every Shoal service on this machine (idempotent)."""
    private_dir(state_dir())  # its data, credentials and logs are the owner's only
    broker = local_broker()
    try:
        broker.start()
    except BrokerError as exc:
        fail(str(exc))
    bus = BusSettings.from_env(
        {
            **os.environ,
            "SHOAL_KAFKA_BOOTSTRAP": broker.layout.bootstrap,
            "SHOAL_KAFKA_CREDENTIALS_FILE": str(broker.credentials(ADMIN)),
        }
    )
    try:
        asyncio.run(ensure_topics(bus))
    except BusUnavailable as exc:
        fail(f"Kafka started but topics could not be created: {exc}")
    click.echo(f"kafka      running  {broker.layout.bootstrap} (data {broker.layout.data_dir})")
    token = os.environ.get("SHOAL_API_TOKEN") or api_token()
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_API_TOKEN"}
    env["SHOAL_KAFKA_BOOTSTRAP"] = broker.layout.bootstrap
    env.pop(KEY_VARIABLE, None)
    key_file = os.environ.get(KEY_VARIABLE) or str(sealing_key_file())
    for service in built_services(instances):
        own = {"SHOAL_KAFKA_CREDENTIALS_FILE": str(broker.credentials(role_of(service.module)))}
        own |= service.own_env(env)
        if service.module == "api":  # the only service that needs the api token
            own["SHOAL_API_TOKEN"] = token
        if service.module in ("api", "node_agent"):  # who seals secrets, and who opens them
            own[KEY_VARIABLE] = key_file
        pid = service.start(env | own)
        click.echo(f"{service.name:<10} running  pid {pid} (log {service.log_file})")
    if any(s.module == "api" for s in built_services()):
        deploy_demo(token)


def role_of_instance(service: ServiceProcess) -> str:
    """What this instance holds, from its /metrics: a decider leads its role or stands by;
    an api shares the replicas' limits with its peers."""
    if service.module not in SCALED_MODULES:
        return ""
    request = urllib.request.Request(
        f"http://127.0.0.1:{service.http_port(dict(os.environ))}/metrics"
    )
    if service.module == "api":  # the api's /metrics is behind its token
        token = os.environ.get("SHOAL_API_TOKEN") or api_token()
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return "  (not answering)"
    if service.module == "api":
        peers = re.search(r"^shoal_api_peers\{[^}]*\} (\d+)\.0$", text, re.M)
        return f"  shares the replicas' limits with {int(peers[1]) - 1 if peers else '?'} peer(s)"
    leads = re.search(r"^shoal_leader\{[^}]*\} 1\.0$", text, re.M)
    return "  leads" if leads else "  standby"


def deploy_demo(token: str) -> None:
    """Build the local images and deploy the demo function `hello` (kept if it exists)."""
    try:
        ensure_images(docker.from_env())
    except Exception as exc:
        fail(f"could not build the demo image: {exc}; is dockerd running (docker info)?")
    api = f"http://127.0.0.1:{env_int(os.environ, 'SHOAL_API_HTTP_PORT', 8080)}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{api}/readyz", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            fail(f"the api did not get ready at {api} within 60 s; see its log")
        time.sleep(0.2)
    request = urllib.request.Request(
        f"{api}/v1/functions",
        method="POST",
        data=json.dumps(DEMO).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            fail(f"deploying the demo function failed: {exc.code} {exc.read().decode()}")
    click.echo(f"demo       deployed  curl {api}/fn/hello/")
    dashboard = env_int(os.environ, "SHOAL_API_DASHBOARD_PORT", 8081)
    click.echo(
        f"dashboard  http://127.0.0.1:{dashboard}/ui  (log in with a read token: "
        "shoal token create --scope read)"
    )


@cli.command()
def down() -> None:
    """Stop every Shoal service, this node's replicas and Kafka (the event history stays
    for the next `shoal up`, which starts the replicas again)."""
    for service in reversed(known_services()):
        service.stop()
        click.echo(f"{service.name:<10} stopped")
    node = os.environ.get("SHOAL_NODE_ID") or socket.gethostname()
    try:
        client = docker.from_env()
        replicas = client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"})
        for container in replicas:
            container.remove(force=True)
        click.echo(f"replicas   removed  {len(replicas)} on node {node}")
    except docker.errors.DockerException as exc:
        click.echo(
            f"shoal: could not remove this node's replicas ({exc}); is dockerd running?", err=True
        )
    local_broker().stop()
    click.echo("kafka      stopped")


@cli.command()
def status() -> None:
    """Show which parts of the local platform run; exit 1 when one does not."""
    broker = local_broker()
    healthy = broker.pid() is not None and broker.is_listening()
    click.echo(f"kafka      {'running' if healthy else 'stopped'}  {broker.layout.bootstrap}")
    for service in known_services():
        pid = service.pid()
        healthy = healthy and pid is not None
        state = f"running  pid {pid}{role_of_instance(service)}" if pid else "stopped"
        click.echo(f"{service.name:<12} {state}")
    if not healthy:
        sys.exit(1)


for command in (
    functions.deploy,
    functions.list_functions,
    functions.describe,
    functions.delete,
    functions.invoke,
    functions.scale,
    functions.rollback,
    traffic.traffic,
    traffic.tag,
    traffic.untag,
    functions.logs,
    nodes.nodes,
    history.top,
    history.audit,
    history.replay,
    kafka.kafka_setup,
    tokens.token,
    secret_commands.secret,
    lab.lab,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="shoal")


if __name__ == "__main__":
    main()
