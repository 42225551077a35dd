"""A replica's response as llhttp (through httptools) parses it: the parser's callbacks
fill a Reply, and what a response may be is checked here (HTTP/1.0 or 1.1, a status of
100-599, no protocol switch, a bounded head). No I/O: bytes in, fields and errors out."""

from __future__ import annotations

import httptools

MAX_HEAD_BYTES = 64 * 1024
"""Bytes a response may take before its head has ended (interim 1xx heads included)."""
MAX_HEADERS = 100
NO_BODY_STATUS = frozenset({204, 304})


class UpstreamError(Exception):
    """The replica did not give a whole HTTP response."""


class Closed(UpstreamError):
    """The replica closed the connection."""


class NoResponse(Closed):
    """The replica closed the connection after the request was sent, before one byte of a
    response: a safe request can go to another replica."""


class Reply:
    """One response being read; `error` holds why it cannot be passed on."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.length: int | None = None
        self.chunked = False
        self.head = False
        """The final (non-1xx) head has been parsed."""
        self.complete = False
        self.keep_alive = False
        self.reusable = True
        """False once bytes arrived that belong to no response asked for."""
        self.body = bytearray()
        self.received = 0
        self.head_bytes = 0
        """Bytes received up to the feed that completed the head (framing is counted from
        there: trailers and chunk lines must stay small beside the body)."""
        self.body_bytes = 0
        self.error: UpstreamError | None = None

    def has_head(self) -> bool:
        return self.head

    def has_ended(self) -> bool:
        return self.complete

    def has_data(self) -> bool:
        return self.complete or bool(self.body)

    def feed(self, data: bytes) -> None:
        """Parse what arrived; a failure is kept in `error` for the side that waits."""
        if self.complete or self.error is not None:
            self.reusable = False
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail("the replica switched protocols (101), which is not proxied")
        except httptools.HttpParserCallbackError as failure:
            cause = failure.__context__
            self.fail(str(cause) if isinstance(cause, UpstreamError) else str(failure))
        except httptools.HttpParserError as failure:
            self.fail(f"not an HTTP/1.x response with a status of 100-599: {failure}")
        if not self.head and self.received > MAX_HEAD_BYTES:
            self.fail(f"a response head longer than {MAX_HEAD_BYTES} bytes")
        elif self.head and self.received - self.head_bytes > MAX_HEAD_BYTES + 8 * self.body_bytes:
            self.fail("a response whose chunk framing or trailers far outweigh its body")

    def at_eof(self) -> None:
        """The replica closed the connection: the end of a body delimited by the close, or
        a response cut short."""
        if self.complete or self.error is not None:
            return
        if self.head and self.length is None and not self.chunked:
            self.complete = True
            self.keep_alive = False
        elif self.received == 0:
            self.error = NoResponse("the replica closed the connection without answering")
        else:
            self.error = Closed("the replica closed the connection before the response ended")

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = UpstreamError(reason)

    def on_message_begin(self) -> None:
        if self.head:
            self.reusable = False
            return
        self.reason = ""
        self.headers = []
        self.length = None
        self.chunked = False

    def on_status(self, reason: bytes) -> None:
        if not self.head:
            self.reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head:
            return  # a trailer after a chunked body, or a response nobody asked for
        if len(self.headers) >= MAX_HEADERS:
            raise UpstreamError(f"more than {MAX_HEADERS} response headers")
        key, text = name.decode("latin-1"), value.decode("latin-1").strip(" \t")
        lower = key.lower()
        if lower == "content-length":
            self.length = int(text)
        elif lower == "transfer-encoding":
            self.chunked = text.lower().rstrip().endswith("chunked")
        self.headers.append((key, text))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if self.head or (100 <= status < 200 and status != 101):
            return
        version = self.parser.get_http_version()
        if status == 101:
            self.fail("the replica switched protocols (101), which is not proxied")
            return
        if version not in ("1.0", "1.1") or not 100 <= status <= 599:
            self.fail(f"not an HTTP/1.x response with a status of 100-599: HTTP/{version} {status}")
            return
        self.status, self.head = status, True
        self.head_bytes = self.received
        self.keep_alive = self.parser.should_keep_alive()
        if self.method == "HEAD" or status in NO_BODY_STATUS:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if self.complete or self.error is not None:
            self.reusable = False
        else:
            self.body += body
            self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        if self.head and not self.complete and self.error is None:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()
