"""`shoal kafka-setup`: make Shoal's topics and give the service roles their ACLs on a
Kafka cluster that `shoal up` did not start (the Helm chart's, compose's, your own)."""

from __future__ import annotations

import asyncio

import click

from events.acls import apply_grants, grants
from events.bus import ensure_topics
from services.cli.api_client import CliError
from services.cli.history import bus


@click.command("kafka-setup")
@click.option(
    "--no-acls", is_flag=True, help="Make the topics only (a cluster with no authorizer)."
)
def kafka_setup(no_acls: bool) -> None:
    """Make the topics and grant each role's principal (named api, scheduler, autoscaler,
    healer and node) what it may write and read; nothing else. Run it as an operator
    (a super user) with SHOAL_KAFKA_* set; it is idempotent and removes grants that are
    no longer declared."""
    settings = bus()
    if settings.role is not None:
        raise CliError(f"run this as an operator, not as the {settings.role} role's principal")

    async def setup() -> None:
        await ensure_topics(settings)
        if not no_acls:
            await apply_grants(settings, grants())

    try:
        asyncio.run(setup())
    except Exception as exc:
        raise CliError(f"Kafka at {settings.bootstrap_servers}: {exc!r}") from exc
    done = "topics made" if no_acls else f"topics made, {len(grants())} grants in place"
    click.echo(f"{done} on {settings.bootstrap_servers} (namespace {settings.namespace})")
