"""`shoal traffic` and `shoal tag`: split a function's calls between its revisions, and
name a revision so that `/fn/NAME@TAG/` reaches it."""

from __future__ import annotations

import re
from typing import Any

import click

from services.cli.api_client import ApiClient

SHARE = re.compile(r"^r?([0-9]{1,9})=([0-9]{1,3})%?$")


def _target(item: str) -> dict[str, int]:
    found = SHARE.match(item)
    if found is None:
        raise click.BadParameter(f"{item!r} is not rREVISION=PERCENT (for example r3=90)")
    return {"revision": int(found[1]), "percent": int(found[2])}


@click.command()
@click.argument("name")
@click.argument("shares", nargs=-1, required=True)
def traffic(name: str, shares: tuple[str, ...]) -> None:
    """Split NAME's calls: rREVISION=PERCENT ..., summing to 100 (ends a canary)."""
    targets = [_target(item) for item in shares]
    if sum(t["percent"] for t in targets) != 100:
        raise click.BadParameter(
            f"the percents sum to {sum(t['percent'] for t in targets)}, not 100",
            param_hint="SHARES",
        )
    ApiClient.from_env().call("PUT", f"/functions/{name}/traffic", {"targets": targets})
    click.echo(f"{name}: " + ", ".join(f"r{t['revision']} {t['percent']}%" for t in targets))


@click.command()
@click.argument("name")
@click.argument("revision")
@click.argument("tag_name", metavar="TAG")
def tag(name: str, revision: str, tag_name: str) -> None:
    """Name REVISION (r4 or 4) of NAME with TAG: /fn/NAME@TAG/ reaches it."""
    number = revision.removeprefix("r")
    if not number.isdigit() or not 1 <= int(number) <= 2**31:
        raise click.BadParameter(f"{revision!r} is not a revision (r4 or 4)", param_hint="REVISION")
    ApiClient.from_env().call(
        "PUT", f"/functions/{name}/tags/{tag_name}", {"revision": int(number)}
    )
    click.echo(f"{name} r{number} tagged {tag_name}: /fn/{name}@{tag_name}/")


@click.command()
@click.argument("name")
@click.argument("tag_name", metavar="TAG")
def untag(name: str, tag_name: str) -> None:
    """Remove TAG from NAME."""
    ApiClient.from_env().call("DELETE", f"/functions/{name}/tags/{tag_name}")
    click.echo(f"{name}: tag {tag_name} removed")


def traffic_facts(traffic: dict[str, Any]) -> list[tuple[str, Any]]:
    """What `shoal describe` says of a function's traffic and canary."""
    split = ", ".join(f"r{t['revision']} {t['percent']}%" for t in traffic["split"])
    tags = ", ".join(f"{k} -> r{v}" for k, v in traffic["tags"].items())
    facts: list[tuple[str, Any]] = [("traffic", split or None), ("tags", tags or None)]
    canary = traffic.get("canary")
    if canary:
        steps = " -> ".join(f"{s}%" for s in [*canary["steps"], 100])
        at = f"step {canary['step']} at {canary['percent']}%" if canary["step"] else "not ready"
        facts.append(("canary", f"r{canary['revision']} vs r{canary['stable']}: {at} ({steps})"))
        analysis = canary.get("analysis")
        if analysis:
            facts.append(("analysis", f"{analysis['decision']}: {analysis['reason']}"))
    return facts
