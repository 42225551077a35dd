"""A replica's response head, parsed strictly (pure): the status line (HTTP/1.0 or 1.1, a
status of 100-599), header lines (a token, a colon, a value), and what they say about the
body's framing and the connection; and a chunk's size line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NO_BODY_STATUS = frozenset({204, 304})
STATUS = re.compile(r"[1-5][0-9][0-9]")
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(;[^\r\n]*)?\r\n")


class UpstreamError(Exception):
    """The replica did not give a whole HTTP response."""


@dataclass
class ResponseHead:
    """A response's status line and headers, and what they say about the connection."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    length: int | None = None
    chunked: bool = False
    keep_alive: bool = True

    def header(self, name: str, value: str) -> None:
        lower = name.lower()
        if lower == "content-length":
            if not value.isdigit():
                raise UpstreamError(f"a bad Content-Length {value[:20]!r}")
            self.length = int(value)
        elif lower == "transfer-encoding":
            self.chunked = value.lower().endswith("chunked")
        elif lower == "connection":
            tokens = {t.strip().lower() for t in value.split(",")}
            if self.version == "HTTP/1.0":
                self.keep_alive = "keep-alive" in tokens
            else:
                self.keep_alive = "close" not in tokens
        self.headers.append((name, value))

    def framing(self, method: str) -> tuple[str, int | None]:
        """How the body is delimited (none, length, chunked, close) and its length."""
        if self.status == 101:
            self.keep_alive = False  # the connection now speaks another protocol
        if method == "HEAD" or self.status in NO_BODY_STATUS or self.status == 101:
            return "none", (self.length if method == "HEAD" else 0)
        if self.chunked:
            return "chunked", None
        if self.length is not None:
            return "length", self.length
        return "close", None


def parse_head(raw: bytes) -> ResponseHead:
    """A head as read up to its blank line."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.0", "HTTP/1.1") or not STATUS.fullmatch(code):
        raise UpstreamError(f"not an HTTP/1.x response (status 100-599): {lines[0][:60]!r}")
    head = ResponseHead(
        version=version, status=int(code), reason=reason, keep_alive=version == "HTTP/1.1"
    )
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not TOKEN.fullmatch(name):
            raise UpstreamError(f"a bad response header line {line[:60]!r}")
        head.header(name, value.strip())
    return head


def chunk_size(line: bytes) -> int:
    """The size of a chunk, from its line: hex digits only, then extensions (ignored)."""
    found = CHUNK_SIZE.fullmatch(line)
    if found is None:
        raise UpstreamError(f"a bad chunk size line {line[:40]!r}")
    return int(found.group(1), 16)
