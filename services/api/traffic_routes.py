"""`/v1/functions/{name}/traffic` and `/tags/{tag}`: a user splits a function's calls
between its revisions and names revisions with tags. Each change is an event on the
functions topic, like every other change of a function."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from events.projections.functions import MAX_TAGS, FunctionView
from events.types import Payload, RevisionTagged, TrafficSplit
from services.api.control import invalid, problem
from services.api.status import function_status
from services.api.validation import FieldError, InvalidInput, whole_number
from services.api.view import ApiView


@dataclass
class TrafficRoutes:
    view: ApiView
    read_json: Callable[[web.Request], Awaitable[Any]]
    record: Callable[[Payload], Awaitable[None]]
    function_or_404: Callable[[str], FunctionView]

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/functions/{name}/traffic", self.set_traffic),
            web.put("/functions/{name}/tags/{tag}", self.set_tag),
            web.delete("/functions/{name}/tags/{tag}", self.remove_tag),
        ]

    async def set_traffic(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        function = self.function_or_404(name)
        body = await self.read_json(request)
        targets = body.get("targets") if isinstance(body, dict) else None
        try:
            split = msgspec.convert(
                {"function": name, "targets": targets, "requested_by": "api"}, TrafficSplit
            )
        except msgspec.ValidationError as exc:
            return invalid(InvalidInput([FieldError("targets", str(exc))]))
        refused = _unusable(function, [t.revision for t in split.targets])
        if refused is not None:
            return refused
        await self.record(split)
        return web.json_response(function_status(self.view, self.function_or_404(name)))

    async def set_tag(self, request: web.Request) -> web.Response:
        name, tag = request.match_info["name"], request.match_info["tag"]
        function = self.function_or_404(name)
        try:
            revision = whole_number(await self.read_json(request), "revision", minimum=1)
            tagged = msgspec.convert(
                {"function": name, "tag": tag, "revision": revision, "requested_by": "api"},
                RevisionTagged,
            )
        except InvalidInput as exc:
            return invalid(exc)
        except msgspec.ValidationError as exc:
            return invalid(InvalidInput([FieldError("tag", str(exc))]))
        refused = _unusable(function, [revision])
        if refused is not None:
            return refused
        if tag not in function.tags and len(function.tags) >= MAX_TAGS:
            return problem(409, f"a function has at most {MAX_TAGS} tags; remove one first")
        await self.record(tagged)
        return web.json_response(function_status(self.view, self.function_or_404(name)))

    async def remove_tag(self, request: web.Request) -> web.Response:
        name, tag = request.match_info["name"], request.match_info["tag"]
        function = self.function_or_404(name)
        if tag not in function.tags:
            return problem(404, f"function {name!r} has no tag {tag!r}", tags=sorted(function.tags))
        await self.record(RevisionTagged(function=name, tag=tag, revision=0, requested_by="api"))
        return web.json_response(function_status(self.view, self.function_or_404(name)))


def _unusable(function: FunctionView, revisions: list[int]) -> web.Response | None:
    """A 404 for a revision the function does not have, a 409 for one rolled back."""
    for revision in revisions:
        if revision not in function.revisions or revision < function.first_revision:
            return problem(
                404,
                f"function {function.name!r} has no revision {revision}",
                revisions=sorted(function.revisions),
            )
        if revision in function.rolled_back:
            return problem(
                409,
                f"revision {revision} of {function.name!r} was rolled back; deploy it again",
            )
    return None
