"""A large or open-ended response of a replica, passed on to the caller as it comes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from services.api.call import Call
from services.api.upstream import UpstreamError, UpstreamResponse
from services.common.logs import StructLog


async def stream(
    request: web.Request,
    call: Call,
    upstream: UpstreamResponse,
    returned: list[tuple[str, str]],
    *,
    clock: Callable[[], float],
    log: StructLog,
) -> web.StreamResponse:
    """The response passed on within the call's idle and overall timeouts; past one, the
    caller's connection is cut (a cut body is never passed off as whole)."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(returned)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    chunks = aiter(upstream.chunks())
    try:
        await response.prepare(request)
        while True:
            async with asyncio.timeout(call.idle_s(clock())):
                chunk = await anext(chunks, None)
                if chunk is None:
                    break
                await response.write(chunk)
    except BaseException as failure:
        upstream.release(False)
        if isinstance(failure, TimeoutError | UpstreamError) and request.transport:
            log.warning("response cut", function=call.name, cause=repr(failure))
            request.transport.abort()
            return response
        raise
    await response.write_eof()
    return response
