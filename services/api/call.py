"""One call on the request path: what is sent to a replica (target, headers, the body
read whole), and the bounds it runs within (its deadline, response-start and idle
timeouts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.spec import FunctionSpec
from services.api.forwarding import request_headers, upstream_target
from services.api.incoming import Incoming
from services.api.traffic import LATEST, Target


@dataclass
class Call:
    """One call on its way: what is sent, and the bounds it runs within."""

    name: str
    spec: FunctionSpec
    deadline: float
    target: str
    headers: list[tuple[str, str]]
    body: bytes | None = None
    unanswered: set[str] = field(default_factory=set)
    """Replicas that closed the connection on this (safe) call without answering."""
    to: Target = LATEST
    """The revision it goes to (not strict: the latest, as it is when a replica is picked)."""

    @classmethod
    def of(
        cls,
        request: Incoming,
        name: str,
        spec: FunctionSpec,
        *,
        deadline: float,
        shoal_credential: bool,
        relayed: tuple[str, str] | None = None,
    ) -> Call:
        """The call as the request asks; `relayed` is the caller's address and Host as
        told by the peer that relayed it."""
        client, host = relayed or (request.remote, request.host)
        headers = request_headers(
            list(request.headers.items()),
            peer=client,
            host=host or request.host,
            proto=request.scheme,
            shoal_credential=shoal_credential,
        )
        return cls(name, spec, deadline, upstream_target(request.raw_path), headers)

    def remaining(self, now: float) -> float:
        return max(0.0, self.deadline - now)

    def response_start_s(self, now: float) -> float:
        start = self.spec.response_start_timeout_s
        return min(start, self.remaining(now)) if start else self.remaining(now)

    def idle_s(self, now: float) -> float:
        idle = self.spec.idle_timeout_s
        return min(idle, self.remaining(now)) if idle else self.remaining(now)
