"""`shoal token [ls | create | revoke]`: scoped api tokens (an admin's business)."""

from __future__ import annotations

import click
import msgspec

from events.payloads.tokens import FUNCTIONS_RULE, SCOPES, TokenRequest
from services.cli.api_client import ApiClient
from services.cli.output import emit, output_option

COLUMNS = (
    ("ID", "id"),
    ("SCOPE", "scope"),
    ("FUNCTIONS", "functions"),
    ("NAME", "name"),
    ("CREATED", "created_at"),
    ("BY", "created_by"),
    ("REVOKED", "revoked"),
)


@click.group(invoke_without_command=True)
@output_option
@click.pass_context
def token(ctx: click.Context, output: str) -> None:
    """Api tokens; with no subcommand, list them."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_tokens, output=output)


@token.command(name="ls")
@output_option
def list_tokens(output: str) -> None:
    """List the tokens (never their secrets)."""
    found = ApiClient.from_env().call("GET", "/tokens")["tokens"]
    rows = [{**t, "functions": ",".join(t["functions"]) or None} for t in found]
    emit(found, output, COLUMNS, rows)


@token.command(name="create")
@click.option("--scope", type=click.Choice(SCOPES), required=True, help="what it may do")
@click.option(
    "--function", "functions", multiple=True, help="a private function it may call (invoke)"
)
@click.option("--name", default="", help="a label, shown by `shoal token ls`")
def create_token(scope: str, functions: tuple[str, ...], name: str) -> None:
    """Make a token and print it: it is shown this once (Shoal keeps only its digest)."""
    asked = TokenRequest(scope=scope, functions=list(functions), name=name)  # type: ignore[arg-type]
    if not asked.names_functions_rightly():
        raise click.UsageError(f"--function: {FUNCTIONS_RULE}")
    made = ApiClient.from_env().call("POST", "/tokens", msgspec.to_builtins(asked))
    click.echo(f"token {made['id']} ({scope}); keep it now, it is not shown again:", err=True)
    click.echo(made["token"])


@token.command(name="revoke")
@click.argument("token_id")
def revoke_token(token_id: str) -> None:
    """Revoke a token: every api instance refuses it within two seconds."""
    ApiClient.from_env().call("DELETE", f"/tokens/{token_id}")
    click.echo(f"token {token_id} revoked")
