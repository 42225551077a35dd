"""A large or open-ended response of a replica, passed on to the caller as it comes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.api.call import Call
from services.api.incoming import Headers, Sink
from services.api.upstream import UpstreamError, UpstreamResponse
from services.common.logs import StructLog


async def stream(
    sink: Sink,
    call: Call,
    upstream: UpstreamResponse,
    returned: Headers,
    *,
    clock: Callable[[], float],
    log: StructLog,
) -> None:
    """The response passed on within the call's idle and overall timeouts; past one, the
    caller's connection is cut (a cut body is never passed off as whole)."""
    chunks = aiter(upstream.chunks())
    try:
        await sink.start(upstream.status, upstream.reason, returned, upstream.content_length)
        while True:
            async with asyncio.timeout(call.idle_s(clock())):
                chunk = await anext(chunks, None)
                if chunk is None:
                    break
                await sink.write(chunk)
    except BaseException as failure:
        upstream.release(False)
        if isinstance(failure, TimeoutError | UpstreamError):
            log.warning("response cut", function=call.name, cause=repr(failure))
            sink.cut()
            return
        raise
    await sink.end()
