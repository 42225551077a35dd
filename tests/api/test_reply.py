"""A replica's response as the request path parses it (llhttp through httptools): what is
accepted, what is refused as not HTTP/1.x, and how the body and the connection end (pure)."""

from __future__ import annotations

import pytest

from services.api.reply import MAX_HEAD_BYTES, MAX_HEADERS, Closed, NoResponse, Reply


def fed(*pieces: bytes, method: str = "GET") -> Reply:
    reply = Reply(method)
    for piece in pieces:
        reply.feed(piece)
    return reply


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 9999 Odd\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 600 High\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 O\rK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    ],
)
def test_a_response_outside_http_1x_is_refused(raw: bytes) -> None:
    reply = fed(raw)
    assert reply.error is not None
    assert not reply.head or reply.status in range(100, 600)


def test_a_head_is_parsed_and_a_small_body_ends_the_response() -> None:
    reply = fed(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A:  b \r\n\r\n", b"ok")
    assert (reply.error, reply.status, reply.reason, reply.length) == (None, 201, "Created", 2)
    assert reply.headers == [("Content-Length", "2"), ("X-A", "b")]
    assert (bytes(reply.body), reply.complete, reply.keep_alive, reply.reusable) == (
        b"ok",
        True,
        True,
        True,
    )


@pytest.mark.parametrize(
    "chunk", [b"0x2\r\nok\r\n", b"-2\r\nok\r\n", b"1_0\r\nok\r\n", b"2\r\nokXX", b"g\r\nok\r\n"]
)
def test_a_chunk_size_must_be_plain_hex_and_a_chunk_end_with_crlf(chunk: bytes) -> None:
    reply = fed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunk + b"0\r\n\r\n")
    assert reply.error is not None and not reply.complete


def test_chunks_with_extensions_and_trailers_are_decoded_and_trailers_dropped() -> None:
    reply = fed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1A;name=value\r\n",
        b"abcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n",
    )
    assert reply.error is None and reply.complete and reply.keep_alive
    assert bytes(reply.body) == b"abcdefghijklmnopqrstuvwxyz"
    assert [name for name, _ in reply.headers] == ["Transfer-Encoding"]


def test_interim_heads_are_skipped() -> None:
    reply = fed(
        b"HTTP/1.1 100 Continue\r\nX-I: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    assert (reply.status, reply.reason, reply.headers) == (200, "OK", [("Content-Length", "0")])
    assert reply.complete


def test_a_head_request_and_a_204_have_no_body_and_extra_bytes_spoil_the_connection() -> None:
    head = fed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD")
    assert head.complete and head.length == 5 and head.reusable and head.keep_alive
    spoiled = fed(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
    assert spoiled.complete and not spoiled.reusable
    assert spoiled.status == 204 and spoiled.reason == "No Content"


def test_a_close_delimited_body_ends_at_eof_and_a_cut_body_is_an_error() -> None:
    until_close = fed(b"HTTP/1.0 200 OK\r\n\r\nsome", b" more")
    assert not until_close.complete
    until_close.at_eof()
    assert until_close.complete and not until_close.keep_alive
    assert bytes(until_close.body) == b"some more"
    cut = fed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsome")
    cut.at_eof()
    assert isinstance(cut.error, Closed) and not isinstance(cut.error, NoResponse)
    silent = fed()
    silent.at_eof()
    assert isinstance(silent.error, NoResponse)


def test_connection_close_and_http_1_0_are_not_kept_alive() -> None:
    assert not fed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert not fed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive


def test_a_head_too_long_or_with_too_many_headers_is_refused() -> None:
    endless = fed(b"HTTP/1.1 200 OK\r\n", b"X-A: " + b"a" * MAX_HEAD_BYTES)
    assert endless.error is not None and "longer" in str(endless.error)
    many = b"".join(b"X-%d: 1\r\n" % n for n in range(MAX_HEADERS + 1))
    crowded = fed(b"HTTP/1.1 200 OK\r\n" + many + b"\r\n")
    assert crowded.error is not None and "headers" in str(crowded.error)


def test_bytes_after_an_error_or_the_end_are_not_parsed() -> None:
    reply = fed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", b"stray")
    assert reply.complete and not reply.reusable and bytes(reply.body) == b"x"


def test_trailers_or_chunk_lines_far_beyond_the_body_are_refused() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    flood = fed(head, b"1\r\na\r\n0\r\nX-T: " + b"a" * (MAX_HEAD_BYTES + 100))
    assert flood.error is not None and "outweigh" in str(flood.error)
    tiny = fed(head, *[b"1\r\nx\r\n"] * 20_000, b"0\r\n\r\n")
    assert tiny.error is None and tiny.complete and len(tiny.body) == 20_000


def test_a_switch_of_protocol_is_refused_before_its_head_counts() -> None:
    switched = fed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
    assert switched.error is not None and not switched.head and "101" in str(switched.error)
