"""How the CLI prints: tables for people (colors only on a terminal), JSON or YAML for
machines, and a spinner while something is awaited."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json", "yaml")


def output_option(command: F) -> F:
    decorated: F = click.option(
        "--output",
        "-o",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people, json or yaml for machines",
    )(command)
    return decorated


def console(err: bool = False) -> Console:
    """A console that colors only on a terminal (and never with NO_COLOR set)."""
    return Console(stderr=err, highlight=False, soft_wrap=True)


def emit(
    data: Any,
    output: str,
    columns: Sequence[tuple[str, str]] = (),
    rows: Sequence[dict[str, Any]] | None = None,
    title: str | None = None,
) -> None:
    """`data` as JSON/YAML, or `rows` (default: `data`) as a table of `columns`
    (header, key)."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if output == "yaml":
        click.echo(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))
        return
    table = Table(title=title, show_edge=False, box=None, pad_edge=False, header_style="bold")
    for header, _ in columns:
        table.add_column(header)
    for row in rows if rows is not None else data:
        table.add_row(*(cell(row.get(key)) for _, key in columns))
    console().print(table)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@contextlib.contextmanager
def waiting(message: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal (nothing otherwise); yields a function to update its text."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    with console(err=True).status(message) as status:
        yield lambda text: status.update(text)
