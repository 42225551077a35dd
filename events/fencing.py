"""Fencing of deposed leaders (pure): a decider's command or decision carries the epoch its
role's leader had (`epoch`); once a reader has seen one of a newer epoch of that role about
a subject (a node, a function), older epochs' about it from that role are refused. Each
family of fenced events lives on one topic, keyed by its subject, so the node-agent, the
deciders and `shoal replay` meet them in the same order and agree on what was obeyed."""

from __future__ import annotations

from dataclasses import dataclass, field

ELECTED = ("scheduler", "autoscaler", "healer")
"""The deciders: any number of instances each, one of which (elected) decides."""
EPOCH_CEILING = 2**40
"""No leader's epoch comes near this (one election a millisecond for 35 years): an event
above it is forged or broken, refused without raising the bar, and a leader's epoch is
held at it (`Leadership`), so that no event can fence every later leader for good."""


def role_of(source: str) -> str:
    """The service of a CloudEvents source `/shoal/<service>/<instance>`."""
    parts = source.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "shoal" else source


@dataclass
class Fence:
    highest: dict[tuple[str, str, str], tuple[int, str]] = field(default_factory=dict)
    """(family, subject, role) -> the newest epoch seen, and the source that had it."""
    roles: dict[str, int] = field(default_factory=dict)
    """role -> its newest epoch on any subject."""

    def admits(self, family: str, subject: str, source: str, epoch: int) -> bool:
        """Whether an event may be obeyed: not of an older epoch than the newest seen about
        its subject from its role, nor of the same epoch from another instance (two leaders
        that came to one epoch: the first to speak holds it). Epoch 0 is an unelected
        sender's (any instance of the api). A newer epoch becomes the one to beat."""
        if epoch > EPOCH_CEILING:
            return False
        role = role_of(source)
        key = (family, subject, role)
        newest, holder = self.highest.get(key, (0, source))
        if epoch < newest or (epoch == newest and epoch > 0 and source != holder):
            return False
        self.highest[key] = (epoch, source)
        self.roles[role] = max(self.roles.get(role, 0), epoch)
        return True

    def forget(self, subject: str) -> None:
        """Drop what is kept about a subject that is gone (a function deleted long ago)."""
        for key in [k for k in self.highest if k[1] == subject]:
            del self.highest[key]

    def newest(self, role: str) -> int:
        """The newest epoch of a role on any subject (a new leader leads above it)."""
        return self.roles.get(role, 0)
