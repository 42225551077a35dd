"""Secrets, folded from their events: each one's newest version, sealed. Nothing here can
open a value; the api hands the sealed versions to the revisions that name them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events.types import SealedSecret, SecretRemoved, SecretSet


@dataclass
class SecretView:
    sealed: SealedSecret
    set_at: datetime
    set_by: str

    @property
    def version(self) -> int:
        return self.sealed.version


@dataclass
class SecretsProjection:
    secrets: dict[str, SecretView] = field(default_factory=dict)
    newest: dict[str, int] = field(default_factory=dict)
    """The newest version of every secret ever set, removed ones included, so that a
    secret set again numbers on; the first value of a version read is the one it has."""

    def apply(self, event: SecretSet | SecretRemoved, at: datetime) -> None:
        if isinstance(event, SecretRemoved):
            self.secrets.pop(event.name, None)
            return
        version = event.sealed.version
        if event.sealed.name != event.name or version <= self.newest.get(event.name, 0):
            return
        self.newest[event.name] = version
        self.secrets[event.name] = SecretView(sealed=event.sealed, set_at=at, set_by=event.set_by)

    def next_version(self, name: str) -> int:
        return self.newest.get(name, 0) + 1
