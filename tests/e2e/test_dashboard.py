"""The dashboard in a real browser (Debian's Chromium driven by Playwright): the page
follows a function's replicas rising under load and shows the scale decisions."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Locator, Page, async_playwright

from tests.e2e.conftest import AUTH, Platform
from tests.support.platform import TOKEN

pytestmark = [pytest.mark.kafka, pytest.mark.docker]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("SHOAL_ARTIFACTS", Path(__file__).parents[2] / ".shoal/artifacts"))


async def number_in(page: Page, selector: str) -> float:
    found = page.locator(selector)
    if await found.count() == 0:
        return -1
    raw = (await found.first.text_content() or "").strip()
    return float(raw) if raw.replace(".", "", 1).isdigit() else -1


async def eventually(probe: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():
        assert time.monotonic() < deadline, f"the page did not show {what} in {timeout_s} s"
        await asyncio.sleep(0.25)


async def test_the_dashboard_follows_a_scale_up(platform: Platform) -> None:
    assert await asyncio.to_thread(Path(CHROMIUM).exists), (
        f"{CHROMIUM} is missing: apt-get install chromium"
    )
    api = platform.api.url
    spec = {
        "name": "busy",
        "image": "shoal-test/sleep:1",
        "min_replicas": 1,
        "initial_scale": 1,
        "max_replicas": 4,
        "target": 2,
        "target_utilization": 1.0,
        "concurrency_limit": 2,
        "stable_window_s": 6,
        "cpu": 0.2,
        "memory_mb": 32,
        "env": {"SLEEP_S": "0.3"},
    }
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            await log_in(page, platform.api.dashboard_url, api)
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{api}/v1/functions", json=spec, headers=AUTH) as reply:
                    assert reply.status == 201, await reply.text()
                ready = '#functions tr[data-function="busy"] .ready'
                await eventually(lambda: _at_least(page, ready, 1), 30, "one ready replica")
                stop = asyncio.Event()

                async def worker() -> None:
                    while not stop.is_set():
                        async with http.get(f"{api}/fn/busy/cgi-bin/sleep") as r:
                            await r.read()

                load = [asyncio.create_task(worker()) for _ in range(8)]
                try:
                    await eventually(lambda: _at_least(page, ready, 3), 40, "replicas rising")
                finally:
                    stop.set()
                    await asyncio.gather(*load)
            decisions = page.locator('.chart[data-function="busy"] .decision')
            await eventually(lambda: _count_at_least(decisions, 2), 10, "scale decisions")
            assert "→" in (await decisions.first.text_content() or "")
            assert await page.locator("#events li", has_text="scaled busy").count() >= 1
            assert await page.locator("#nodes tr", has_text=platform.agents[0].node_id).count()
            await _hover_latest_decision(page)
            await a_function_page_gets_no_credentials(page, api, platform.api.dashboard_url)
            await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            await browser.close()


async def log_in(page: Page, dashboard: str, api: str) -> None:
    """Through the page's form: the token is traded for an HttpOnly cookie, and is in no
    URL and no storage the page's scripts (or a function's) can read."""
    answer = await page.goto(f"{dashboard}/ui")
    assert answer is not None and "script-src 'self'" in answer.headers["content-security-policy"]
    await page.wait_for_selector("#login", state="visible", timeout=15_000)
    refused = await page.evaluate(
        """async (token) => (await fetch("/ui/login", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({token})})).status""",
        TOKEN,
    )
    assert refused == 401, "the api token (an admin) is never put in a cookie"
    async with aiohttp.ClientSession() as http:
        made = {"scope": "read", "name": "dashboard"}
        async with http.post(f"{api}/v1/tokens", json=made, headers=AUTH) as reply:
            assert reply.status == 201, await reply.text()
            reader = (await reply.json())["token"]
    await page.fill("#token", reader)
    await page.click("#login button")
    await page.wait_for_selector("#status:text('live')", timeout=15_000)
    assert reader not in page.url
    assert await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == (
        "{}{}"
    )
    assert "shoal_session" not in await page.evaluate("document.cookie")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == "shoal_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"


async def a_function_page_gets_no_credentials(page: Page, api: str, dashboard: str) -> None:
    """A page served through /fn runs script: it reads no cookie of Shoal's, gets nothing
    from /v1 with the browser's credentials, finds no dashboard on its own origin, and
    cannot read the dashboard's origin (no CORS; the dashboard refuses other origins)."""
    await page.goto(f"{api}/fn/busy/")
    found = await page.evaluate(
        """async (dashboard) => {
            const v1 = await fetch("/v1/functions", { credentials: "include" });
            const here = await fetch("/ui/stream", { credentials: "include" });
            let there;
            try {
                const answer = await fetch(dashboard + "/ui/session", { credentials: "include" });
                there = "read " + answer.status + " " + (await answer.text());
            } catch (error) {
                there = "refused";
            }
            const blind = await fetch(dashboard + "/ui/session",
                { credentials: "include", mode: "no-cors" });
            return { cookie: document.cookie, v1: v1.status, here: here.status, there,
                     blind: blind.type + " " + (await blind.text()) };
        }""",
        dashboard,
    )
    expected = {"cookie": "", "v1": 401, "here": 404, "there": "refused", "blind": "opaque "}
    assert found == expected, found


async def _at_least(page: Page, selector: str, wanted: float) -> bool:
    return await number_in(page, selector) >= wanted


async def _count_at_least(locator: Locator, wanted: int) -> bool:
    return await locator.count() >= wanted


async def _hover_latest_decision(page: Page) -> None:
    """Hovering a decision's dashed line shows its reason."""
    where = await page.evaluate(
        """() => {
            const canvas = document.querySelector('.chart[data-function="busy"] canvas');
            const d = state.series.busy.decisions.at(-1);
            const rect = canvas.getBoundingClientRect();
            const x = rect.left + rect.width - ((Date.now() / 1000 - d.t) / WINDOW_S) * rect.width;
            return {x, y: rect.top + rect.height / 2, reason: d.reason};
        }"""
    )
    await page.mouse.move(where["x"], where["y"])
    tooltip = page.locator("#tooltip")
    await tooltip.wait_for(state="visible", timeout=5_000)
    assert where["reason"] in (await tooltip.text_content() or "")
