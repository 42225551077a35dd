"""`shoal lab`: a cluster of hosts and Kafka brokers on this machine, each in a network
namespace of its own (`services.local.lab`), to see failover with one's own eyes."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
import docker

from services.local.lab import Lab, lab_home, saved_test_images
from services.local.lab_net import LabError, LabPlan


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except LabError as exc:
        click.echo(f"shoal lab: {exc}", err=True)
        sys.exit(1)


def _images() -> dict[str, bytes]:
    try:
        return saved_test_images(docker.from_env())
    except docker.errors.DockerException as exc:
        raise LabError(f"the test images come from this machine's dockerd: {exc}") from exc


@click.group()
def lab() -> None:
    """A local cluster: hosts with their own Docker Engine and node-agent, and a Kafka
    cluster, each in a network namespace (needs root and iproute2)."""


@lab.command()
@click.option("--hosts", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option("--brokers", type=click.IntRange(1, 9), default=3, show_default=True)
def up(hosts: int, brokers: int) -> None:
    """Make and start the lab (idempotent)."""

    def make() -> None:
        built = Lab(lab_home(), LabPlan(hosts, brokers))
        built.up(images=_images())
        for name, address, what in built.status():
            click.echo(f"{name:<4} {address:<14} {what}")
        click.echo(
            f"api  http://{built.plan.host(1).address}:8080  (token: {lab_home()}/api-token)"
        )
        click.echo(f"kafka {built.plan.bootstrap}")

    _run(make)


@lab.command()
def down() -> None:
    """Stop everything in the lab and remove its namespaces (its data stays)."""
    _run(lambda: Lab.saved().down())
    click.echo("lab down")


@lab.command()
def status() -> None:
    """Each host and broker, its address, and how many processes run there."""

    def show() -> None:
        for name, address, what in Lab.saved().status():
            click.echo(f"{name:<4} {address:<14} {what}")

    _run(show)


@lab.command()
@click.argument("name")
def partition(name: str) -> None:
    """Cut a host or broker off the lab's network (its link down)."""
    _run(lambda: Lab.saved().cut(name, off=True))
    click.echo(f"{name} cut off")


@lab.command()
@click.argument("name")
def heal(name: str) -> None:
    """Bring a cut-off host or broker back onto the network."""
    _run(lambda: Lab.saved().cut(name, off=False))
    click.echo(f"{name} back on the network")


@lab.command()
@click.argument("name")
def kill(name: str) -> None:
    """SIGKILL everything on a host (its engine and replicas too) or a broker."""
    _run(lambda: Lab.saved().kill(name))
    click.echo(f"{name} killed")


@lab.command()
@click.argument("name")
def start(name: str) -> None:
    """Start a killed host or broker again."""
    _run(lambda: Lab.saved().start(name, _images()))
    click.echo(f"{name} started")
