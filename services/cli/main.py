"""`shoal`: run and inspect the local platform."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """Shoal: serverless-style containers on plain Docker hosts."""


def main() -> None:
    cli(prog_name="shoal")


if __name__ == "__main__":
    main()
