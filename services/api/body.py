"""A call's request body, read whole before a replica is taken: within the function's
limit, the call's timeout, and a budget of body bytes the api holds across all calls at
once (many large bodies in flight would exhaust its memory); and the refusals the request
path answers with."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from services.api.auth import Principal
from services.api.call import Call
from services.api.incoming import Incoming


class NoReplica(Exception):
    """No replica could take the request; `response` is what the caller gets."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


def error(status: int, message: str, **details: object) -> web.Response:
    return web.json_response({"error": message, **details}, status=status)


def private_refusal(found: Principal | None, name: str) -> web.Response | None:
    """Why a caller may not call a private function (None: it may)."""
    if found is None:
        return error(
            401,
            "this function is private: send a token that may call it as 'Authorization: "
            f"Bearer <token>' (`shoal token create --scope invoke --function {name}`)",
        )
    if not found.may_invoke(name):
        return error(403, f"a {found.scope} token may not call {name!r}", function=name)
    return None


def too_large(function: str, limit: int) -> web.Response:
    return error(413, f"the request body is over {limit} bytes", function=function, limit=limit)


@dataclass
class BodyBudget:
    """Request body bytes the api may hold at once, over all calls."""

    limit: int
    held: int = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held = max(0, self.held - size)


def over_budget(function: str) -> NoReplica:
    response = error(
        503,
        "the api holds as many request bodies as it may at once: try again shortly",
        function=function,
    )
    response.headers["Retry-After"] = "1"
    return NoReplica(response)


async def read_body(
    request: Incoming, call: Call, budget: BodyBudget, clock: Callable[[], float]
) -> bytes | None:
    """The whole body (a slow client holds no replica's slot), its bytes taken from the
    budget (all at once when the length is declared) until the caller gives them back;
    413 over the function's limit, 408 past the call's timeout, 503 over the budget."""
    if not request.has_body:
        return None
    limit, declared = call.spec.max_body_bytes, request.content_length
    if declared is not None and declared > limit:
        raise NoReplica(too_large(call.name, limit))
    if declared is not None and not budget.take(declared):
        raise over_budget(call.name)
    held, body = declared or 0, bytearray()
    try:
        async with asyncio.timeout(max(0.0, call.deadline - clock())):
            async for piece in request.pieces():
                if len(body) + len(piece) > limit:
                    raise NoReplica(too_large(call.name, limit))
                if declared is None:
                    if not budget.take(len(piece)):
                        raise over_budget(call.name)
                    held += len(piece)
                body += piece
    except BaseException as failure:
        budget.give(held)
        if isinstance(failure, TimeoutError):
            raise NoReplica(
                error(408, "the request body did not arrive within the timeout", function=call.name)
            ) from None
        raise
    budget.give(held - len(body))
    return bytes(body)


def queue_full(function: str, limit: int) -> web.Response:
    """503 for a call that finds the function's queue full."""
    return web.json_response(
        {
            "error": "too many requests waiting for a replica",
            "function": function,
            "queue_limit": limit,
        },
        status=503,
        headers={"Retry-After": "1"},
    )
