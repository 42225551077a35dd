"""The CLI hands the api token to the api's /v1 only: never to a function, never on to
where a redirect points."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from services.cli.main import cli

TOKEN = "admin-token-0123456789"


class Recorder(ThreadingHTTPServer):
    def __init__(self, redirect_to: str | None = None) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.redirect_to = redirect_to
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.server.redirect_to is not None:
            self.send_response(307)
            self.send_header("Location", f"{self.server.redirect_to}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"functions": []}' if self.path.startswith("/v1") else b"hi"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    elsewhere = Recorder()
    api = Recorder(redirect_to=elsewhere.url)
    for server in (elsewhere, api):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield api, elsewhere
    for server in (elsewhere, api):
        server.shutdown()
        server.server_close()


def run(url: str, *args: str) -> Any:
    env = {"SHOAL_API_URL": url, "SHOAL_API_TOKEN": TOKEN, "SHOAL_INVOKE_TOKEN": ""}
    return CliRunner().invoke(cli, list(args), env=env)


def test_a_redirect_is_not_followed_with_the_token(servers: tuple[Recorder, Recorder]) -> None:
    api, elsewhere = servers
    result = run(api.url, "ls")
    assert result.exit_code == 1
    assert "does not follow a redirect with the api token" in result.output
    assert api.seen == [("/v1/functions", f"Bearer {TOKEN}")]
    assert elsewhere.seen == []
    called = run(api.url, "invoke", "hello", "-i", "--token", "shoal_t1_x")
    assert called.exit_code == 0 and called.output.startswith("HTTP 307"), called.output
    assert elsewhere.seen == [], "a function's redirect is returned, not followed"


def test_invoke_sends_no_api_token_only_the_one_given(servers: tuple[Recorder, Recorder]) -> None:
    _, plain = servers
    assert run(plain.url, "invoke", "hello").exit_code == 0
    assert run(plain.url, "invoke", "hello", "--token", "shoal_t1_x").exit_code == 0
    assert plain.seen == [("/fn/hello/", None), ("/fn/hello/", "Bearer shoal_t1_x")]
    assert run(plain.url, "ls").exit_code == 0
    assert plain.seen[-1] == ("/v1/functions", f"Bearer {TOKEN}")
