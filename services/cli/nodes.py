"""`shoal nodes [ls | cordon | uncordon | drain]`."""

from __future__ import annotations

import click

from services.cli.api_client import ApiClient
from services.cli.output import emit, output_option

COLUMNS = (
    ("NODE", "node"),
    ("CONDITION", "condition"),
    ("RUNTIME", "runtime"),
    ("CPUS", "cpus"),
    ("MEMORY MB", "memory"),
    ("REPLICAS", "replicas"),
    ("HEARD (UTC)", "last_heartbeat_at"),
)


@click.group(invoke_without_command=True)
@output_option
@click.pass_context
def nodes(ctx: click.Context, output: str) -> None:
    """The nodes; with no subcommand, list them."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_nodes, output=output)


@nodes.command(name="ls")
@output_option
def list_nodes(output: str) -> None:
    """List the nodes with their condition and load: CPUs and memory requested /
    allocatable (used, as last measured)."""
    found = ApiClient.from_env().call("GET", "/nodes")["nodes"]
    rows = [
        {
            **n,
            "cpus": f"{n['used_cpus']:g}/{n['capacity']['cpus']:g} ({n['cpu_cores_used']:.2f})"
            if n["capacity"]
            else None,
            "memory": f"{n['used_memory_mb']:g}/{n['capacity']['memory_mb']} "
            f"({n['memory_mb_used']:.0f})"
            if n["capacity"]
            else None,
            "last_heartbeat_at": (n["last_heartbeat_at"] or "")[11:19] or None,  # UTC time of day
        }
        for n in found
    ]
    emit(found, output, COLUMNS, rows)


def _action(action: str, done: str) -> click.Command:
    @click.argument("node")
    def command(node: str) -> None:
        ApiClient.from_env().call("POST", f"/nodes/{node}/{action}")
        click.echo(f"{node} {done}")

    command.__doc__ = {
        "cordon": "Take a node out of placement (its replicas stay).",
        "uncordon": "Open a node to placement again.",
        "drain": "Move every replica off a node, one at a time, then mark it drained.",
    }[action]
    return nodes.command(name=action)(command)


cordon = _action("cordon", "cordoned: nothing new is placed there")
uncordon = _action("uncordon", "uncordoned")
drain = _action("drain", "draining: its replicas move one at a time (`shoal nodes` shows it)")
