"""The CLI's side of the api: where it is, its token, and JSON calls with errors that say
what to do."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from services.local.paths import state_dir


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: a 3xx comes back as an HTTPError to say what it was."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)
"""What the CLI sends with: the api token goes to the api's /v1 only, never on to where a
redirect points."""


class CliError(click.ClickException):
    """A failure the user can act on: one line on stderr, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"shoal: {self.format_message()}", err=True)


@dataclass(frozen=True)
class ApiClient:
    url: str
    token: str
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ApiClient:
        url = environ.get("SHOAL_API_URL") or (
            f"http://127.0.0.1:{environ.get('SHOAL_API_HTTP_PORT', '8080')}"
        )
        token = environ.get("SHOAL_API_TOKEN", "")
        if not token:
            saved = Path(state_dir()) / "api-token"
            token = saved.read_text().strip() if saved.exists() else ""
        return cls(url=url.rstrip("/"), token=token)

    def call(
        self, method: str, path: str, body: object | None = None, *, missing_ok: bool = False
    ) -> Any:
        """A control-plane call; a 4xx/5xx or an unreachable api raises CliError (a 404
        gives None with `missing_ok`)."""
        request = urllib.request.Request(
            f"{self.url}/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with OPENER.open(request, timeout=self.timeout_s) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read()
            if missing_ok and exc.code == 404:
                return None
            if 300 <= exc.code < 400:
                raise CliError(
                    f"the api answered {exc.code}, redirecting to "
                    f"{exc.headers.get('Location', '(nowhere)')!r}: shoal does not follow a "
                    "redirect with the api token (set SHOAL_API_URL to the api itself)"
                ) from None
            raise CliError(explain(exc.code, body)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: OSError) -> CliError:
        return CliError(
            f"the api at {self.url} is unreachable ({getattr(exc, 'reason', exc)}); "
            "start Shoal with `shoal up` or set SHOAL_API_URL"
        )

    def invoke(
        self,
        function: str,
        path: str,
        method: str,
        data: bytes | None,
        headers: dict[str, str],
        *,
        token: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """A call of a function: never with the api token (a function is not the control
        plane), only with the invoke `token` given for a private one; a redirect is
        returned as it came, not followed."""
        sent = {**headers, **({"Authorization": f"Bearer {token}"} if token else {})}
        request = urllib.request.Request(
            f"{self.url}/fn/{function}/{path.lstrip('/')}", method=method, data=data, headers=sent
        )
        try:
            with OPENER.open(request, timeout=self.timeout_s) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None


def explain(status: int, body: bytes) -> str:
    """The api's JSON error as one line."""
    try:
        error = json.loads(body)
    except ValueError:
        return f"the api answered {status}: {body[:200].decode(errors='replace')}"
    message = str(error.get("error", error)) if isinstance(error, dict) else str(error)
    details = error.get("fields") if isinstance(error, dict) else None
    if isinstance(details, list):
        message += ": " + "; ".join(
            f"{d.get('field')}: {d.get('message')}" for d in details if isinstance(d, dict)
        )
    hint = {
        401: " (set SHOAL_API_TOKEN, or run where `shoal up` saved .shoal/api-token)",
        404: " (see `shoal ls`)",
    }.get(status, "")
    return f"{message} [{status}]{hint}"
