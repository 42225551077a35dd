"""The dashboard is an origin of its own: the api's port (where every function's pages are
served) has no /ui, and the dashboard refuses what another origin's page asks of it, even
with the session cookie, while its own page is served."""

from __future__ import annotations

import aiohttp
import pytest

from tests.api.conftest import AUTH
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka


async def test_the_dashboard_answers_its_own_origin_only(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    made = {"scope": "read", "name": "dash"}
    async with http.post(f"{api.url}/v1/tokens", json=made, headers=AUTH) as reply:
        reader = (await reply.json())["token"]
    async with http.get(f"{api.url}/ui") as reply:
        assert reply.status == 404, "the functions' origin serves no dashboard"
    dashboard = api.dashboard_url
    async with http.get(f"{dashboard}/", allow_redirects=False) as reply:
        assert reply.status == 302 and reply.headers["Location"] == "/ui"
    cookie = {"Cookie": f"shoal_session={reader}"}
    cases = [
        ({}, 200),
        ({"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, 200),
        ({"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}, 403),
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403),
        ({"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"}, 200),
    ]
    for headers, expected in cases:
        async with http.get(f"{dashboard}/ui/session", headers=cookie | headers) as reply:
            assert reply.status == expected, (headers, await reply.text())
    login = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"}
    async with http.post(f"{dashboard}/ui/login", json={"token": reader}, headers=login) as reply:
        assert reply.status == 403, "a form posted from another origin is no login"
    async with http.get(
        f"{dashboard}/ui", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    ) as reply:
        assert (
            reply.status == 200
            and "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
        )
