"""Fencing of deposed leaders (pure): a command carries the epoch its role's leader had
(`epoch`); once a node has seen a command of a newer epoch of that role, commands of older
epochs from that role are refused. The node-agent, the deciders and `shoal replay` apply
the same rule to the same partition (a node's commands are one partition), so they agree
on what was obeyed."""

from __future__ import annotations

from dataclasses import dataclass, field


def role_of(source: str) -> str:
    """The service of a CloudEvents source `/shoal/<service>/<instance>`."""
    parts = source.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "shoal" else source


@dataclass
class Fence:
    highest: dict[tuple[str, str], int] = field(default_factory=dict)
    """(node, role) -> the newest epoch seen in a command of that role to that node."""

    def admits(self, node: str, source: str, epoch: int) -> bool:
        """Whether a command may be obeyed; a newer epoch becomes the one to beat."""
        key = (node, role_of(source))
        newest = self.highest.get(key, 0)
        if epoch < newest:
            return False
        self.highest[key] = epoch
        return True

    def newest(self, role: str) -> int:
        """The newest epoch of a role on any node (a new leader leads above it)."""
        return max((e for (_, r), e in self.highest.items() if r == role), default=0)
