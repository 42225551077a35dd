"""Fencing of deposed leaders (pure): a decider's command or decision carries the epoch its
role's leader had (`epoch`); once a reader has seen one of a newer epoch of that role about
a subject (a node, a function), older epochs' about it from that role are refused. Each
family of fenced events lives on one topic, keyed by its subject, so the node-agent, the
deciders and `shoal replay` meet them in the same order and agree on what was obeyed."""

from __future__ import annotations

from dataclasses import dataclass, field


def role_of(source: str) -> str:
    """The service of a CloudEvents source `/shoal/<service>/<instance>`."""
    parts = source.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "shoal" else source


@dataclass
class Fence:
    highest: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(family, subject, role) -> the newest epoch seen."""

    def admits(self, family: str, subject: str, source: str, epoch: int) -> bool:
        """Whether an event may be obeyed; a newer epoch becomes the one to beat."""
        key = (family, subject, role_of(source))
        newest = self.highest.get(key, 0)
        if epoch < newest:
            return False
        self.highest[key] = epoch
        return True

    def newest(self, role: str) -> int:
        """The newest epoch of a role on any node (a new leader leads above it)."""
        return max((e for (_, _, r), e in self.highest.items() if r == role), default=0)
