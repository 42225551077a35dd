"""A new leader's claims (`events.fencing`): before its first decision, the leader of a
decider role claims every subject it may decide about, on the topic its decisions about it
go to. A reader that meets a claim refuses that role's older epochs about its subject from
then on, also where the successor has decided nothing about it yet."""

from __future__ import annotations

from typing import ClassVar

from events.payloads.base import FunctionScoped, NodeScoped, PosInt


class CommandsClaimed(NodeScoped, frozen=True, kw_only=True):
    """The commands to `node` (start, drain, stop) are its sender's epoch's from now on."""

    TYPE: ClassVar[str] = "dev.shoal.node.commandsclaimed"
    epoch: PosInt


class NodeClaimed(NodeScoped, frozen=True, kw_only=True):
    """Losses, returns and drift repairs of `node` are its sender's epoch's from now on."""

    TYPE: ClassVar[str] = "dev.shoal.node.claimed"
    epoch: PosInt


class ScaleClaimed(FunctionScoped, frozen=True, kw_only=True):
    """Scale decisions, canary analyses and rollbacks of `function` are its sender's
    epoch's from now on."""

    TYPE: ClassVar[str] = "dev.shoal.function.scaleclaimed"
    epoch: PosInt


Claim = CommandsClaimed | NodeClaimed | ScaleClaimed
