"""Where a function's calls go and how many replicas each revision gets (pure, derived
from a `FunctionView`): every service and the api take these from here."""

from __future__ import annotations

import math
from dataclasses import dataclass

from events.types import CanaryAnalysed


@dataclass(slots=True)
class Rollout:
    """A canary in progress: `canary` takes `percent` of the calls, `stable` the rest."""

    canary: int
    stable: int
    step: int = 0
    """The step it is at, from 1 (0: waiting for the canary to be ready)."""
    percent: int = 0
    step_heard_at: float = 0.0
    """When this process heard the step start (the rollout's start, at step 0)."""
    analysis: CanaryAnalysed | None = None
    """The newest judgement of it."""


@dataclass(frozen=True, slots=True)
class Traffic:
    """A function's routing: its split, its tags and its rollout, as the projection has it."""

    revision: int
    """The latest revision: all calls go to it when nothing else is said."""
    split: dict[int, int]
    """An explicit split (revision -> percent); empty: all to `revision`."""
    tags: dict[str, int]
    rollout: Rollout | None

    def shares(self) -> dict[int, int]:
        """Revision -> percent of the calls, those with a share only."""
        if self.rollout is not None:
            canary, stable = self.rollout.canary, self.rollout.stable
            found = {stable: 100 - self.rollout.percent, canary: self.rollout.percent}
        else:
            found = self.split or {self.revision: 100}
        return {r: p for r, p in found.items() if p > 0}

    def primary(self) -> int:
        """The revision with the largest share (the newest of equals)."""
        shares = self.shares()
        return max(shares, key=lambda r: (shares[r], r))

    def kept(self) -> set[int]:
        """Revisions that run replicas: those with a share or a tag, and a canary."""
        kept = set(self.shares()) | set(self.tags.values())
        if self.rollout is not None:
            kept.add(self.rollout.canary)
        return kept

    def plain(self) -> bool:
        """Whether all calls go to the latest revision and no other revision runs."""
        return self.kept() == {self.revision}

    def replicas(self, desired: int) -> dict[int, int]:
        """How `desired` replicas are shared: each revision with a share gets its share,
        rounded up (one at least while `desired` is above 0); a revision with only a tag,
        or a canary not yet started, gets one while `desired` is above 0. Empty when the
        traffic is plain (all replicas are the latest revision's)."""
        if self.plain():
            return {}
        shares = self.shares()
        return {
            r: math.ceil(desired * shares[r] / 100) if r in shares else min(desired, 1)
            for r in sorted(self.kept())
        }

    def summary(self) -> str:
        """One line: the shares, and the canary's step and latest judgement."""
        shares = ", ".join(f"r{r} {p}%" for r, p in sorted(self.shares().items()))
        rollout = self.rollout
        if rollout is None:
            return shares
        at = f"step {rollout.step}" if rollout.step else "waiting for it to be ready"
        said = (
            f": {rollout.analysis.decision}, {rollout.analysis.reason}" if rollout.analysis else ""
        )
        return f"{shares}; canary r{rollout.canary} {at}{said}"
