"""The base of every payload, and the bounded field types they are made of."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
PosInt = Annotated[int, msgspec.Meta(ge=1, le=2**53)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
"""Every float of an event is bounded: none is infinite or NaN."""
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1e6)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
ReplicaId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
"""Reasons and evidence: bounded, so that no event grows past what Kafka accepts."""
LogLine = Annotated[str, msgspec.Meta(max_length=400)]
Endpoint = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
LAST_LOG_LINES = 20
InputName = Annotated[str, msgspec.Meta(max_length=64)]
Measure = Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]

# Upper bounds (ms) of the latency buckets in RequestStats; the last bucket is +Inf.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
)
FINE_LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(1.25**i, 3) for i in range(50))
"""Upper bounds (ms) of RequestStats' fine latency buckets, each 1.25 times the one
before, from 1 ms to about 56 s (the last bucket is +Inf): a quantile read from them is
off by less than a quarter, where the coarse ones can be off by more than half."""


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event payload."""

    TYPE: ClassVar[str] = ""
    SCHEMA: ClassVar[str] = "1.0"

    @property
    def key(self) -> str:
        raise NotImplementedError


class FunctionScoped(Payload, frozen=True, kw_only=True):
    function: Name

    @property
    def key(self) -> str:
        return self.function


class NodeScoped(Payload, frozen=True, kw_only=True):
    node: Name

    @property
    def key(self) -> str:
        return self.node
