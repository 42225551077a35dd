"""`shoal secret [ls | set | rm]`: values a function reads from files, sealed by the api
(the log, the audit and `shoal replay` show their names and versions only)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click
import msgspec

from events.payloads.secrets import MAX_SECRET_BYTES, SecretRequest
from services.cli.api_client import ApiClient
from services.cli.output import emit, output_option

COLUMNS = (
    ("NAME", "name"),
    ("VERSION", "version"),
    ("KEYS", "keys"),
    ("USED BY", "used_by"),
    ("SET", "set_at"),
    ("BY", "set_by"),
)


@click.group(invoke_without_command=True)
@output_option
@click.pass_context
def secret(ctx: click.Context, output: str) -> None:
    """Secrets; with no subcommand, list them."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_secrets, output=output)


@secret.command(name="ls")
@output_option
def list_secrets(output: str) -> None:
    """List the secrets: names, versions and keys, never a value."""
    found = ApiClient.from_env().call("GET", "/secrets")["secrets"]
    rows = [{**s, "keys": ",".join(s["keys"]), "used_by": ",".join(s["used_by"])} for s in found]
    emit(found, output, COLUMNS, rows)


def _pairs(given: tuple[str, ...], hint: str) -> list[tuple[str, str]]:
    pairs = []
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(
                "each must be KEY=VALUE (what was given is not shown: it may be a value)",
                param_hint=hint,
            )
        pairs.append((key, value))
    return pairs


def _from_files(given: tuple[str, ...]) -> list[tuple[str, str]]:
    values = []
    for key, path in _pairs(given, "--from-file"):
        try:
            raw = Path(path).read_bytes()[: MAX_SECRET_BYTES + 1]
            values.append((key, raw.decode()))
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--from-file") from None
    return values


@secret.command(name="set")
@click.argument("name")
@click.argument("values", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--from-file", "files", multiple=True, metavar="KEY=PATH", help="a key's value from a file"
)
def set_secret(name: str, values: tuple[str, ...], files: tuple[str, ...]) -> None:
    """Set secret NAME to new values (a new version); the functions that use it roll out a
    new revision that reads them. Prefer --from-file: a value on the command line is seen
    by other users of this host (ps) and kept in shell history."""
    pairs = _pairs(values, "KEY=VALUE") + _from_files(files)
    keys = [key for key, _ in pairs]
    if not pairs:
        raise click.UsageError("give at least one KEY=VALUE or --from-file KEY=PATH")
    if len(set(keys)) != len(keys):
        raise click.UsageError("a key is given twice")
    try:
        asked = msgspec.convert({"values": dict(pairs)}, SecretRequest)
    except msgspec.ValidationError as exc:
        raise click.UsageError(f"invalid secret: {exc}") from None
    path = f"/secrets/{quote(name, safe='')}"
    made = ApiClient.from_env().call("PUT", path, msgspec.to_builtins(asked))
    click.echo(f"secret {made['name']} set to version {made['version']}")
    for rolled in made["rolled"]:
        click.echo(f"  {rolled['function']} rolls out revision {rolled['revision']}")


@secret.command(name="rm")
@click.argument("name")
def remove_secret(name: str) -> None:
    """Remove a secret no function uses."""
    ApiClient.from_env().call("DELETE", f"/secrets/{quote(name, safe='')}")
    click.echo(f"secret {name} removed")
