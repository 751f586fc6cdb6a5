"""The pure pieces of the probes' HTTP client: status line and headers, body framing,
chunked decoding, request building, error descriptions and certificate expiry warnings."""

from __future__ import annotations

import errno
import ssl
from datetime import UTC, datetime, timedelta

import pytest

from failover.watch.probes.common import describe_error
from failover.watch.probes.http import expiry_warning
from failover.watch.probes.result import ProbeResult
from failover.watch.probes.wire import (
    ChunkedDecoder,
    HttpProtocolError,
    body_framing,
    build_request,
    decode_chunked,
    host_header,
    parse_head,
)

# --- status line and headers -------------------------------------------------------------


def test_parse_head_status_reason_and_headers() -> None:
    head = parse_head(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: 12\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
    )
    assert (head.version, head.status, head.reason) == ("1.1", 200, "OK")
    assert head.get("content-type") == "text/html; charset=utf-8"
    assert head.get("CONTENT-LENGTH") == "12"
    assert head.get_all("set-cookie") == ["a=1", "b=2"]
    assert head.get("missing") is None


def test_parse_head_without_reason_and_http10() -> None:
    head = parse_head(b"HTTP/1.0 503\r\n\r\n")
    assert (head.version, head.status, head.reason, head.headers) == ("1.0", 503, "", ())


def test_parse_head_bare_lf_and_whitespace_around_values() -> None:
    head = parse_head(b"HTTP/1.1 301 Moved Permanently\nLocation:   https://x/  \n\n")
    assert head.status == 301
    assert head.reason == "Moved Permanently"
    assert head.get("location") == "https://x/"


def test_parse_head_folded_header_continues_previous_value() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nX-Long: one\r\n  two\r\n\r\n")
    assert head.get("x-long") == "one two"


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"<html>hello</html>\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n  continuation first\r\n\r\n",
    ],
)
def test_parse_head_rejects_what_is_not_http(raw: bytes) -> None:
    with pytest.raises(HttpProtocolError):
        parse_head(raw)


# --- body framing ---------------------------------------------------------------------------


def _head(status: int = 200, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("status", "headers", "method", "expected"),
    [
        (200, [("Content-Length", "12")], "GET", ("length", 12)),
        (200, [("Content-Length", "12")], "HEAD", ("none", 0)),
        (204, [], "GET", ("none", 0)),
        (304, [("Content-Length", "50")], "GET", ("none", 0)),
        (200, [("Transfer-Encoding", "chunked")], "GET", ("chunked", None)),
        (200, [("Transfer-Encoding", "gzip, chunked")], "GET", ("chunked", None)),
        (
            200,
            [("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
            "GET",
            ("chunked", None),
        ),
        (200, [("Transfer-Encoding", "gzip")], "GET", ("close", None)),
        (200, [], "GET", ("close", None)),
        (200, [("Content-Length", "7"), ("Content-Length", "7")], "GET", ("length", 7)),
    ],
)
def test_body_framing(
    status: int, headers: list[tuple[str, str]], method: str, expected: tuple[str, int | None]
) -> None:
    assert body_framing(parse_head(_head(status, *headers)), method) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Length", "7"), ("Content-Length", "8")],
        [("Content-Length", "-1")],
        [("Content-Length", "12abc")],
    ],
)
def test_body_framing_rejects_bad_content_length(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(HttpProtocolError):
        body_framing(parse_head(_head(200, *headers)), "GET")


# --- chunked decoding -------------------------------------------------------------------------

CHUNKED = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"


def test_decode_chunked_whole_body_with_extension_and_trailer() -> None:
    assert decode_chunked(CHUNKED) == b"hello, world"


def test_chunked_decoder_byte_by_byte() -> None:
    decoder = ChunkedDecoder()
    out = b""
    for i in range(len(CHUNKED)):
        assert not decoder.done
        out += decoder.feed(CHUNKED[i : i + 1])
    assert decoder.done
    assert out == b"hello, world"


def test_chunked_decoder_ignores_what_follows_the_last_chunk() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r\n0\r\n\r\nGARBAGE") == b"abc"
    assert decoder.done
    assert decoder.feed(b"more") == b""


def test_chunked_hex_sizes_and_bare_lf() -> None:
    payload = b"x" * 26
    assert decode_chunked(b"1A\n" + payload + b"\n0\n\n") == payload
    assert decode_chunked(b"1a\r\n" + payload + b"\r\n0\r\n\r\n") == payload


@pytest.mark.parametrize(
    "raw",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",  # not hex
        b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the data
        b"\r\n",  # empty size
        b"-5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_chunked_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(HttpProtocolError):
        decode_chunked(raw)


def test_chunked_incomplete_is_an_error() -> None:
    with pytest.raises(HttpProtocolError, match="last chunk"):
        decode_chunked(b"5\r\nhello\r\n")


def test_chunked_decoder_waits_for_a_split_crlf_after_the_data() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc") == b"abc"
    assert decoder.feed(b"\r") == b""
    assert decoder.feed(b"\n0\r\n\r\n") == b""
    assert decoder.done


def test_chunked_decoder_data_split_across_feeds() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"a\r\n01234") == b"01234"
    assert decoder.feed(b"56789\r\n0\r\n\r\n") == b"56789"
    assert decoder.done


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"1" * 5000, "chunk size line too long"),
        (b"0\r\nX-Trailer: " + b"x" * (64 * 1024 + 1), "chunked trailer too long"),
    ],
)
def test_chunked_decoder_bounds_unterminated_lines(raw: bytes, message: str) -> None:
    with pytest.raises(HttpProtocolError, match=message):
        ChunkedDecoder().feed(raw)


# --- requests ---------------------------------------------------------------------------------


def test_build_request_defaults() -> None:
    raw = build_request("GET", "/healthz?x=1", "shop.example.com")
    assert raw == (
        b"GET /healthz?x=1 HTTP/1.1\r\nHost: shop.example.com\r\n"
        b"User-Agent: failover-probe/0.1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )


def test_build_request_extra_headers_override_case_insensitively() -> None:
    raw = build_request("HEAD", "status", "h", {"user-agent": "mine", "X-Token": "t"}).decode()
    lines = raw.split("\r\n")
    assert lines[0] == "HEAD /status HTTP/1.1"
    assert "user-agent: mine" in lines
    assert "User-Agent: failover-probe/0.1" not in lines
    assert "X-Token: t" in lines
    assert raw.endswith("\r\n\r\n")


@pytest.mark.parametrize(
    ("headers", "path"),
    [({"X-Evil": "a\r\nInjected: 1"}, "/"), ({"bad name": "x"}, "/"), ({}, "/a b")],
)
def test_build_request_refuses_injection(headers: dict[str, str], path: str) -> None:
    with pytest.raises(ValueError):
        build_request("GET", path, "h", headers)


@pytest.mark.parametrize(
    ("name", "port", "default", "expected"),
    [
        ("shop.example.com", 443, 443, "shop.example.com"),
        ("shop.example.com", 8443, 443, "shop.example.com:8443"),
        ("10.0.0.1", 80, 80, "10.0.0.1"),
        ("::1", 8080, 80, "[::1]:8080"),
        ("2001:db8::1", 80, 80, "[2001:db8::1]"),
    ],
)
def test_host_header(name: str, port: int, default: int, expected: str) -> None:
    assert host_header(name, port, default) == expected


# --- errors and certificate warnings ----------------------------------------------------------


def test_describe_error_one_line() -> None:
    assert describe_error(ConnectionRefusedError(errno.ECONNREFUSED, "x")) == "connection refused"
    assert describe_error(OSError(errno.EHOSTUNREACH, "No route to host")) == "host unreachable"
    assert describe_error(HttpProtocolError("odd")) == "bad response: odd"
    err = ssl.SSLCertVerificationError(1, "x")
    err.verify_message = "Hostname mismatch, certificate is not valid for 'a'."
    assert describe_error(err) == (
        "TLS: certificate verify failed: Hostname mismatch, certificate is not valid for 'a'"
    )
    assert "\n" not in describe_error(RuntimeError("two\nlines"))
    assert describe_error(RuntimeError("two\nlines")) == "RuntimeError: two lines"


def test_expiry_warning_windows() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    in5 = now + timedelta(days=5, hours=1)
    assert expiry_warning("shop.test", in5, 14 * 86400, now) == (
        "certificate for shop.test expires in 5 days (2026-12-01)"
    )
    assert expiry_warning("shop.test", in5, 2 * 86400, now) is None
    assert expiry_warning("s", now + timedelta(hours=5), 86400, now) == (
        "certificate for s expires in 5 hours (2026-11-26)"
    )
    assert expiry_warning("s", now - timedelta(days=3), 86400, now) == (
        "certificate for s expired 3 days ago (2026-11-23)"
    )


def test_probe_result_is_frozen() -> None:
    result = ProbeResult("http:80", True, 1.0, "HTTP 200 in 1.0 ms")
    assert result.warning is None
    with pytest.raises(AttributeError):
        result.ok = False  # type: ignore[misc]


# --- body regular expressions: RE2, linear time ---------------------------------------------


def test_body_regex_is_linear_and_rejects_what_re2_cannot_bound() -> None:
    from failover.config.load import parse_config
    from failover.errors import ConfigError
    from failover.watch.probes.regex import search

    assert search(r"<title>Sh.p</title>", "<html><title>Shop</title>")
    assert not search(r"(a+)+$", "a" * 100_000 + "!")  # Python's re: longer than the universe
    config = (
        "sites:\n  shop:\n    hostname: shop.test\n    endpoints:\n"
        "      primary: {address: 192.0.2.1}\n    checks:\n"
        "      - {type: http, expect_body_regex: '(a)\\1'}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(config, "f.yaml", env={})
    (problem,) = info.value.problems
    assert problem.startswith("f.yaml:7: sites.shop.checks[0].expect_body_regex:")
    assert "not a valid RE2 pattern" in problem and "backreferences" in problem
