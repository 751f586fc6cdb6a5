"""Probes: one async function per check type, each returning a ProbeResult.

Site checks always go to an endpoint's own address (never through DNS), with the site's
name as HTTP Host, TLS SNI and the name the certificate is verified against. `probe_all`
runs a whole round concurrently; every probe has its own hard deadline (`check.timeout`,
covering connect, TLS, request and body), so one slow or blackholed endpoint never delays
the others, and no exception ever leaves `probe_all`: a failure is a failed ProbeResult
with a one-line detail.

Only the standard library is imported at module level (start-up time of the CLI);
dnspython, icmplib and cryptography are imported by the probes that need them.

HTTPS is verified with OpenSSL's default trust store; SSL_CERT_FILE / SSL_CERT_DIR
override it (tests point SSL_CERT_FILE at their own CA).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import re
import socket
import ssl
import struct
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from failover.config.models import DnsCheck, HttpCheck, IcmpCheck, TcpCheck

    AnyCheck = HttpCheck | TcpCheck | IcmpCheck | DnsCheck

K = TypeVar("K", bound=Hashable)

USER_AGENT = "failover-probe/0.1"
BODY_LIMIT = 1024 * 1024  # bytes of body read at most; the rest is ignored
HEAD_LIMIT = 64 * 1024  # status line + headers
_READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProbeResult:
    check: str  # the check's label (check.label)
    ok: bool
    latency_ms: float | None  # None when no answer
    detail: str  # one short line
    warning: str | None = None  # e.g. a certificate about to expire


# --- public API ---------------------------------------------------------------------------


async def probe(check: AnyCheck, address: str, hostname: str | None) -> ProbeResult:
    """Probe `address` (an IP; canaries may give a host name) with one check.

    Never raises (except for cancellation from outside): timeouts and errors become a
    failed result. The whole probe is bounded by `check.timeout`.
    """
    label = _label(check)
    state = _State()
    try:
        async with asyncio.timeout(check.timeout):
            if check.type in ("http", "https"):
                return await _probe_http(check, address, hostname, state)
            if check.type == "tcp":
                return await _probe_tcp(check, address, state)
            if check.type == "icmp":
                return await _probe_icmp(check, address, state)
            if check.type == "dns":
                return await _probe_dns(check, address, state)
            return ProbeResult(label, False, None, f"unknown check type {check.type!r}")
    except TimeoutError:
        phase = f" ({state.phase})" if state.phase else ""
        detail = f"timeout after {_secs(check.timeout)}{phase}"
        return ProbeResult(label, False, None, detail, state.warning)
    except Exception as exc:  # every failure is a result, never an exception
        return ProbeResult(label, False, None, describe_error(exc), state.warning)


async def probe_all(
    targets: Sequence[tuple[K, AnyCheck, str, str | None]], *, concurrency: int = 2000
) -> dict[K, ProbeResult]:
    """Run every (key, check, address, hostname) concurrently, at most `concurrency` at once.

    Each probe's deadline starts when it starts. Never raises for a probe's failure.
    """
    if not targets:
        return {}
    limit = max(1, min(concurrency, _fd_budget(min(concurrency, len(targets)))))
    sem = asyncio.Semaphore(limit)

    async def one(check: AnyCheck, address: str, hostname: str | None) -> ProbeResult:
        async with sem:
            return await probe(check, address, hostname)

    tasks = [asyncio.create_task(one(check, addr, host)) for _, check, addr, host in targets]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    results: dict[K, ProbeResult] = {}
    for (key, check, _, _), outcome in zip(targets, done, strict=True):
        if isinstance(outcome, ProbeResult):
            results[key] = outcome
        else:  # only possible for BaseExceptions such as a cancellation
            results[key] = ProbeResult(_label(check), False, None, describe_error(outcome))
    return results


def run_probes(
    targets: Sequence[tuple[K, AnyCheck, str, str | None]], **kw: Any
) -> dict[K, ProbeResult]:
    """Synchronous wrapper: one round in a fresh event loop."""
    return asyncio.run(probe_all(targets, **kw))


# --- shared helpers -----------------------------------------------------------------------


class _State:
    """What a probe was doing (for timeout details) and what it found so far."""

    __slots__ = ("phase", "warning")

    def __init__(self) -> None:
        self.phase = ""
        self.warning: str | None = None


def _label(check: Any) -> str:
    try:
        return str(check.label)
    except Exception:
        return str(getattr(check, "type", "check"))


def _secs(seconds: float) -> str:
    return f"{seconds:g}s"


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _fmt_ms(ms: float) -> str:
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "connection closed by peer",
    errno.ECONNABORTED: "connection aborted",
    errno.EMFILE: "too many open files",
    errno.EADDRNOTAVAIL: "address not available",
}


class ProbeError(Exception):
    """A failure whose message is already the probe's detail."""


def describe_error(exc: BaseException) -> str:
    """One line for an exception raised by a probe."""
    if isinstance(exc, ProbeError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        msg = (exc.verify_message or exc.reason or str(exc)).rstrip(".")
        return f"TLS: certificate verify failed: {msg}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.strerror or str(exc)
        return f"TLS: {str(reason).replace('_', ' ').lower()}"
    if isinstance(exc, asyncio.IncompleteReadError):
        return f"connection closed after {len(exc.partial)} bytes"
    if isinstance(exc, asyncio.LimitOverrunError):
        return "response headers too large"
    if isinstance(exc, HttpProtocolError):
        return f"bad response: {exc}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        if exc.errno in _ERRNO_TEXT:
            return _ERRNO_TEXT[exc.errno]
        if exc.strerror:
            return exc.strerror.lower() if exc.errno else exc.strerror
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {_short(text, 120)}" if text else name


def _fd_budget(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE so that `wanted` probes can hold a socket each;
    returns how many concurrent probes the limit allows."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return wanted
    reserve = 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve))


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


# --- HTTP: pure pieces (unit-tested) --------------------------------------------------------


class HttpProtocolError(ValueError):
    """The server's answer is not HTTP/1.x as we understand it."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in order

    def get(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


_STATUS_LINE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_head(data: bytes) -> ResponseHead:
    """Parse a status line and headers (up to and including the blank line)."""
    text = data.rstrip(b"\r\n")
    lines = text.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    m = _STATUS_LINE.match(status_line)
    if not m:
        raise HttpProtocolError(f"not an HTTP status line: {_short(repr(status_line)[2:-1])}")
    version = f"{int(m.group(1))}.{int(m.group(2))}"
    status = int(m.group(3))
    if not 100 <= status <= 599:
        raise HttpProtocolError(f"status {status} out of range")
    reason = (m.group(4) or b"").decode("latin-1").strip()
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: continue the previous value
            if not headers:
                raise HttpProtocolError("header continuation without a header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
            continue
        name_b, sep, value_b = line.partition(b":")
        name = name_b.decode("latin-1")
        if not sep or not _TOKEN.match(name):
            raise HttpProtocolError(f"malformed header line: {_short(repr(line)[2:-1])}")
        headers.append((name.lower(), value_b.strip().decode("latin-1")))
    return ResponseHead(version, status, reason, tuple(headers))


def body_framing(head: ResponseHead, method: str) -> tuple[str, int | None]:
    """How the body is delimited: ("none", 0), ("length", n), ("chunked", None) or
    ("close", None) (read until the server closes)."""
    if method == "HEAD" or head.status < 200 or head.status in (204, 304):
        return ("none", 0)
    encodings = [
        part.strip().lower()
        for value in head.get_all("transfer-encoding")
        for part in value.split(",")
        if part.strip()
    ]
    if encodings:
        if encodings[-1] == "chunked":
            return ("chunked", None)
        return ("close", None)
    lengths = {v.strip() for value in head.get_all("content-length") for v in value.split(",")}
    if lengths:
        if len(lengths) != 1:
            raise HttpProtocolError("conflicting Content-Length headers")
        (raw,) = lengths
        if not raw.isdigit():
            raise HttpProtocolError(f"invalid Content-Length {_short(raw)!r}")
        return ("length", int(raw))
    return ("close", None)


class ChunkedDecoder:
    """Incremental decoder of `Transfer-Encoding: chunked`. Feed it bytes as they come;
    `feed` returns the decoded data so far, `done` turns True after the last chunk and
    its trailers."""

    __slots__ = ("_buf", "_remaining", "_state", "done")

    def __init__(self) -> None:
        self._buf = b""
        self._state = "size"  # size | data | data_crlf | trailer
        self._remaining = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        self._buf += data
        out = bytearray()
        while True:
            if self._state == "size":
                end = self._buf.find(b"\n")
                if end < 0:
                    if len(self._buf) > 4096:
                        raise HttpProtocolError("chunk size line too long")
                    break
                line = self._buf[:end].rstrip(b"\r")
                self._buf = self._buf[end + 1 :]
                size_text = line.split(b";", 1)[0].strip()
                try:
                    if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
                        raise ValueError
                    size = int(size_text, 16)
                except ValueError:
                    raise HttpProtocolError(
                        f"bad chunk size {_short(repr(size_text)[2:-1])!r}"
                    ) from None
                if size == 0:
                    self._state = "trailer"
                else:
                    self._remaining = size
                    self._state = "data"
            elif self._state == "data":
                if not self._buf:
                    break
                take = self._buf[: self._remaining]
                out += take
                self._buf = self._buf[len(take) :]
                self._remaining -= len(take)
                if self._remaining == 0:
                    self._state = "data_crlf"
            elif self._state == "data_crlf":
                if len(self._buf) < 1:
                    break
                if self._buf.startswith(b"\r\n"):
                    self._buf = self._buf[2:]
                elif self._buf.startswith(b"\n"):
                    self._buf = self._buf[1:]
                elif self._buf == b"\r":
                    break
                else:
                    raise HttpProtocolError("missing CRLF after chunk data")
                self._state = "size"
            else:  # trailer: header lines until an empty line
                end = self._buf.find(b"\n")
                if end < 0:
                    if len(self._buf) > HEAD_LIMIT:
                        raise HttpProtocolError("chunked trailer too long")
                    break
                line = self._buf[:end].rstrip(b"\r")
                self._buf = self._buf[end + 1 :]
                if not line:
                    self.done = True
                    break
        return bytes(out)


def decode_chunked(data: bytes) -> bytes:
    """Decode a complete chunked body (raises HttpProtocolError when it is incomplete)."""
    decoder = ChunkedDecoder()
    out = decoder.feed(data)
    if not decoder.done:
        raise HttpProtocolError("chunked body ends before its last chunk")
    return out


def host_header(hostname: str, port: int, default_port: int) -> str:
    host = hostname
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return host if port == default_port else f"{host}:{port}"


def build_request(
    method: str, path: str, host: str, headers: dict[str, str] | None = None
) -> bytes:
    """An HTTP/1.1 request with Host, User-Agent and Connection: close, plus extra headers
    (which override the defaults, case-insensitively)."""
    if not path.startswith("/"):
        path = "/" + path
    fields: dict[str, tuple[str, str]] = {
        "host": ("Host", host),
        "user-agent": ("User-Agent", USER_AGENT),
        "accept": ("Accept", "*/*"),
        "connection": ("Connection", "close"),
    }
    for name, value in (headers or {}).items():
        if not _TOKEN.match(name) or "\r" in value or "\n" in value:
            raise ValueError(f"invalid request header {name!r}")
        fields[name.lower()] = (name, value)
    if any(c in path for c in " \r\n"):
        raise ValueError("invalid request path")
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.values()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _charset(head: ResponseHead) -> str:
    ctype = head.get("content-type") or ""
    m = re.search(r"charset=\"?([A-Za-z0-9._-]+)", ctype)
    return m.group(1) if m else "utf-8"


def _status_list(check: HttpCheck) -> str:
    return "[" + ", ".join(str(s) for s in check.expect_status) + "]"


# --- HTTP(S) probe --------------------------------------------------------------------------

_CTX_CACHE: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}


def tls_context(verify: bool) -> ssl.SSLContext:
    """A client context, cached per (verify, SSL_CERT_FILE, SSL_CERT_DIR)."""
    key = (verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    ctx = _CTX_CACHE.get(key)
    if ctx is None:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        _CTX_CACHE[key] = ctx
    return ctx


def _not_after(ssl_obj: Any, verified: bool) -> datetime | None:
    if ssl_obj is None:
        return None
    if verified:
        cert = ssl_obj.getpeercert()
        if cert and cert.get("notAfter"):
            return datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
        return None
    der = ssl_obj.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc


def expiry_warning(
    name: str, not_after: datetime, window: float, now: datetime | None = None
) -> str | None:
    """The warning for a certificate that expires within `window` seconds (or has expired)."""
    now = now or datetime.now(UTC)
    left = (not_after - now).total_seconds()
    day = not_after.strftime("%Y-%m-%d")
    if left <= 0:
        ago = -left
        span = f"{int(ago // 86400)} days" if ago >= 86400 else f"{max(1, int(ago // 3600))} hours"
        return f"certificate for {name} expired {span} ago ({day})"
    if left > window:
        return None
    if left >= 2 * 86400:
        span = f"{int(left // 86400)} days"
    elif left >= 3600:
        span = f"{int(left // 3600)} hours"
    else:
        span = f"{max(1, int(left // 60))} minutes"
    return f"certificate for {name} expires in {span} ({day})"


class _Connection:
    """A client connection over an asyncio stream, with TLS done here through memory BIOs
    (asyncio's own TLS transport allocates a 256 KiB buffer per connection, which costs
    both memory and CPU at a thousand concurrent probes), and a small read buffer."""

    __slots__ = ("_in", "_out", "buf", "reader", "tls", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.tls: ssl.SSLObject | None = None
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        self.buf = bytearray()

    async def start_tls(self, ctx: ssl.SSLContext, server_hostname: str) -> ssl.SSLObject:
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(self._in, self._out, server_side=False, server_hostname=server_hostname)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                try:
                    data = await self.reader.read(_READ_SIZE)
                except ConnectionResetError:
                    raise ProbeError("TLS: connection reset during the handshake") from None
                if not data:
                    raise ProbeError("TLS: connection closed during the handshake") from None
                self._in.write(data)
        self._flush()
        self.tls = tls
        return tls

    def _flush(self) -> None:
        if self._out is not None and self._out.pending:
            self.writer.write(self._out.read())

    async def send(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.write(data)
            self._flush()
        else:
            self.writer.write(data)
        await self.writer.drain()

    async def _recv(self) -> bytes:
        """The next piece of (decrypted) data; b"" when the server has closed."""
        if self.tls is None:
            return await self.reader.read(_READ_SIZE)
        assert self._in is not None
        while True:
            try:
                return self.tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                self._flush()  # e.g. TLS 1.3 key updates
                data = await self.reader.read(_READ_SIZE)
                if not data:
                    return b""  # closed without close_notify: an end like any other here
                self._in.write(data)
            except ssl.SSLZeroReturnError:  # close_notify
                return b""

    async def read(self, limit: int = _READ_SIZE) -> bytes:
        if self.buf:
            data = bytes(self.buf[:limit])
            del self.buf[:limit]
            return data
        return await self._recv()

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = await self._recv()
            if not data:
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
            self.buf += data
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_head(self) -> bytes:
        """Status line and headers, up to and including the blank line."""
        start = 0
        while True:
            end = self.buf.find(b"\r\n\r\n", start)
            if end >= 0:
                end += 4
                break
            end = self.buf.find(b"\n\n", start)  # a server ending lines with bare LFs
            if end >= 0:
                end += 2
                break
            if len(self.buf) > HEAD_LIMIT:
                raise HttpProtocolError("response headers too large")
            start = max(0, len(self.buf) - 3)
            data = await self._recv()
            if not data:
                if not self.buf:
                    raise HttpProtocolError("connection closed without a response")
                raise HttpProtocolError("connection closed in the middle of the headers")
            self.buf += data
        head = bytes(self.buf[:end])
        del self.buf[:end]
        return head

    def abort(self) -> None:
        try:
            self.writer.transport.abort()
        except Exception:
            pass


async def _read_body(
    conn: _Connection, mode: str, length: int | None, limit: int
) -> tuple[bytes, bool]:
    """The body (at most `limit` bytes) and whether the server closed the connection."""
    if mode == "none":
        return b"", False
    if mode == "length":
        assert length is not None
        want = min(length, limit)
        try:
            return await conn.readexactly(want), False
        except asyncio.IncompleteReadError as exc:
            raise HttpProtocolError(
                f"connection closed after {len(exc.partial)} of {length} body bytes"
            ) from None
    out = bytearray()
    if mode == "chunked":
        decoder = ChunkedDecoder()
        while not decoder.done and len(out) < limit:
            data = await conn.read()
            if not data:
                raise HttpProtocolError("connection closed in the middle of a chunked body")
            out += decoder.feed(data)
        return bytes(out[:limit]), False
    while len(out) < limit:  # read until close
        data = await conn.read()
        if not data:
            return bytes(out), True
        out += data
    return bytes(out[:limit]), False


async def _probe_http(
    check: HttpCheck, address: str, hostname: str | None, state: _State
) -> ProbeResult:
    label = check.label
    https = check.type == "https"
    port = check.effective_port
    name = hostname or address
    ctx = tls_context(check.tls_verify) if https else None
    request = build_request(
        check.method, check.path, host_header(name, port, 443 if https else 80), check.headers
    )
    start = time.perf_counter()
    conn: _Connection | None = None
    try:
        state.phase = "connect"
        reader, writer = await asyncio.open_connection(address, port, limit=HEAD_LIMIT)
        conn = _Connection(reader, writer)
        if ctx is not None:
            state.phase = "TLS handshake"
            tls = await conn.start_tls(ctx, name)
            try:
                not_after = _not_after(tls, check.tls_verify)
            except Exception as exc:
                state.warning = f"cannot read the certificate's expiry: {describe_error(exc)}"
            else:
                if not_after is not None:
                    state.warning = expiry_warning(name, not_after, check.tls_expiry_warn)
        state.phase = "request"
        await conn.send(request)
        state.phase = "waiting for the response"
        head = parse_head(await conn.read_head())
        while 100 <= head.status < 200 and head.status != 101:  # interim responses
            head = parse_head(await conn.read_head())
        mode, length = body_framing(head, check.method)
        state.phase = "reading the body"
        body, _ = await _read_body(conn, mode, length, BODY_LIMIT)
        elapsed = time.perf_counter() - start
    finally:
        if conn is not None:
            conn.abort()
    latency = _ms(elapsed)
    took = f"in {_fmt_ms(latency)}"
    warning = state.warning
    if not check.status_ok(head.status):
        return ProbeResult(
            label, False, latency, f"status {head.status} not in {_status_list(check)}", warning
        )
    if check.expect_body is not None or check.expect_body_regex is not None:
        charset = _charset(head)
        try:
            text = body.decode(charset, errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        if check.expect_body is not None and check.expect_body not in text:
            return ProbeResult(
                label, False, latency, f"body lacks {_short(check.expect_body)!r}", warning
            )
        if check.expect_body_regex is not None and not re.search(check.expect_body_regex, text):
            return ProbeResult(
                label,
                False,
                latency,
                f"body does not match /{_short(check.expect_body_regex)}/",
                warning,
            )
    if check.max_latency is not None and elapsed > check.max_latency:
        return ProbeResult(
            label,
            False,
            latency,
            f"HTTP {head.status} {took}, slower than {_secs(check.max_latency)}",
            warning,
        )
    return ProbeResult(label, True, latency, f"HTTP {head.status} {took}", warning)


# --- TCP ------------------------------------------------------------------------------------


async def _probe_tcp(check: TcpCheck, address: str, state: _State) -> ProbeResult:
    state.phase = "connect"
    start = time.perf_counter()
    _, writer = await asyncio.open_connection(address, check.port)
    elapsed = time.perf_counter() - start
    writer.close()
    latency = _ms(elapsed)
    return ProbeResult(check.label, True, latency, f"TCP connect in {_fmt_ms(latency)}")


# --- ICMP -----------------------------------------------------------------------------------

_ECHO_INTERVAL = 0.2


def icmp_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, v6: bool, payload: bytes = b"failover-probe") -> bytes:
    """An ICMP (or ICMPv6) echo request; the kernel fills in ICMPv6's checksum."""
    kind = 128 if v6 else 8
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + payload
    checksum = icmp_checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, checksum, ident, seq) + payload


def parse_echo_reply(data: bytes, v6: bool) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply as read from a raw socket, else None.
    IPv4 raw sockets give the IP header too; IPv6 ones give the ICMPv6 message only."""
    if not v6:
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8 or data[0] != (129 if v6 else 0) or data[1] != 0:
        return None
    ident, seq = struct.unpack("!HH", data[4:8])
    return ident, seq


class _Pinger:
    """One raw ICMP socket per event loop and address family, shared by every ping of a
    round: replies are matched to their probe by (address, identifier, sequence).

    (A raw socket per ping, as icmplib opens, gets a copy of every reply on the machine:
    at a few hundred concurrent pings the copies overflow the sockets' buffers and
    healthy hosts appear to lose packets.)
    """

    _live: ClassVar[dict[tuple[int, int], _Pinger]] = {}
    _next_ident = (os.getpid() * 7919) & 0xFFFF

    def __init__(self, loop: asyncio.AbstractEventLoop, family: int) -> None:
        self.loop = loop
        self.family = family
        self.v6 = family == socket.AF_INET6
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        self.sock = socket.socket(family, socket.SOCK_RAW, proto)
        self.sock.setblocking(False)
        for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # *BUFFORCE
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, 4 * 1024 * 1024)
            except OSError:
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        with contextlib.suppress(OSError):  # let only echo replies in
            if self.v6:
                words = [0xFFFFFFFF] * 8
                words[129 >> 5] &= ~(1 << (129 & 31))
                self.sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("8I", *words))
            else:
                self.sock.setsockopt(255, 1, struct.pack("I", ~1 & 0xFFFFFFFF))
        self.waiters: dict[tuple[str, int, int], asyncio.Future[float]] = {}
        self.users = 0
        loop.add_reader(self.sock.fileno(), self._readable)

    @classmethod
    def acquire(cls, family: int) -> _Pinger:
        loop = asyncio.get_running_loop()
        key = (id(loop), family)
        pinger = cls._live.get(key)
        if pinger is None:
            pinger = cls._live[key] = cls(loop, family)
        pinger.users += 1
        return pinger

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self._live.pop((id(self.loop), self.family), None)
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    @classmethod
    def new_ident(cls) -> int:
        cls._next_ident = (cls._next_ident + 1) & 0xFFFF
        return cls._next_ident

    def _readable(self) -> None:
        now = time.perf_counter()
        for _ in range(10000):
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            parsed = parse_echo_reply(data, self.v6)
            if parsed is None:
                continue
            source = str(addr[0]).split("%", 1)[0]
            fut = self.waiters.get((source, *parsed))
            if fut is not None and not fut.done():
                fut.set_result(now)

    async def ping(
        self, address: str, count: int, interval: float, deadline: float
    ) -> list[float | None]:
        """Send `count` echoes `interval` apart; the round-trip time of each (None: lost)
        once all are answered or at `deadline` (a perf_counter time)."""
        ident = self.new_ident()
        sent: list[tuple[float, asyncio.Future[float]]] = []
        try:
            for seq in range(count):
                if seq:
                    await asyncio.sleep(interval)
                fut: asyncio.Future[float] = self.loop.create_future()
                self.waiters[(address, ident, seq)] = fut
                packet = echo_request(ident, seq, self.v6)
                start = time.perf_counter()
                await self.loop.sock_sendto(self.sock, packet, (address, 0))
                sent.append((start, fut))
            remaining = deadline - time.perf_counter()
            if remaining > 0:
                await asyncio.wait([f for _, f in sent], timeout=remaining)
        finally:
            for seq in range(count):
                self.waiters.pop((address, ident, seq), None)
        return [
            (f.result() - start) * 1000.0 if f.done() and not f.cancelled() else None
            for start, f in sent
        ]


async def _probe_icmp(check: IcmpCheck, address: str, state: _State) -> ProbeResult:
    state.phase = "ping"
    count = check.count
    interval = min(_ECHO_INTERVAL, check.timeout / (4 * count))
    loop = asyncio.get_running_loop()
    if not _is_ip(address):  # canaries may name their host
        state.phase = "resolving the host's name"
        infos = await loop.getaddrinfo(address, None, type=socket.SOCK_RAW)
        address = str(infos[0][4][0])
        state.phase = "ping"
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    # Leave a little of the deadline to report the loss rather than a timeout.
    deadline = time.perf_counter() + check.timeout * 0.9
    try:
        pinger = _Pinger.acquire(family)
    except PermissionError:
        rtts = await _ping_unprivileged(address, count, interval, check.timeout * 0.9)
    else:
        try:
            rtts = await pinger.ping(str(ip), count, interval, deadline)
        finally:
            pinger.release()
    answered = [r for r in rtts if r is not None]
    sent = len(rtts)
    loss = 1.0 - len(answered) / sent if sent else 1.0
    ok = bool(answered) and loss <= check.max_loss
    if answered:
        avg = sum(answered) / len(answered)
        latency: float | None = round(avg, 3)
        detail = f"{len(answered)}/{sent} replies, avg {_fmt_ms(avg)}"
    else:
        latency = None
        detail = f"no reply to {sent} echo requests"
    if not ok and answered:
        detail = f"{loss:.0%} loss ({detail})"
    return ProbeResult(check.label, ok, latency, detail)


async def _ping_unprivileged(
    address: str, count: int, interval: float, budget: float
) -> list[float | None]:
    """Without raw sockets: icmplib's ICMP datagram sockets (net.ipv4.ping_group_range),
    which the kernel demultiplexes per socket."""
    from icmplib import SocketPermissionError, async_ping

    per_echo = max(0.05, (budget - (count - 1) * interval) / count)
    try:
        host = await async_ping(
            address, count=count, interval=interval, timeout=per_echo, privileged=False
        )
    except SocketPermissionError:
        raise ProbeError(
            "ICMP not permitted: run as root, give CAP_NET_RAW, or allow this group in "
            "net.ipv4.ping_group_range"
        ) from None
    rtts: list[float | None] = [float(r) for r in host.rtts]
    return rtts + [None] * (host.packets_sent - len(rtts))


# --- DNS ------------------------------------------------------------------------------------


def _norm_dns(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.rstrip(".").lower()


async def _probe_dns(check: DnsCheck, address: str, state: _State) -> ProbeResult:
    import dns.asyncquery
    import dns.message
    import dns.rcode
    import dns.rdatatype

    label = check.label
    if not _is_ip(address):  # canaries may name their server
        state.phase = "resolving the server's name"
        infos = await asyncio.get_running_loop().getaddrinfo(address, check.port)
        address = str(infos[0][4][0])
    query = dns.message.make_query(check.query, dns.rdatatype.from_text(check.rdtype))
    state.phase = "query"
    start = time.perf_counter()
    # dnspython's own timeout is a backstop: the probe's deadline fires first.
    backstop = check.timeout + 1
    if check.protocol == "tcp":
        response = await dns.asyncquery.tcp(query, address, timeout=backstop, port=check.port)
    else:
        response, _ = await dns.asyncquery.udp_with_fallback(
            query, address, timeout=backstop, port=check.port
        )
    latency = _ms(time.perf_counter() - start)
    rcode = response.rcode()
    rname = dns.rcode.to_text(rcode)
    if rcode != dns.rcode.NOERROR:
        return ProbeResult(label, False, latency, f"{rname} for {check.query} {check.rdtype}")
    wanted = dns.rdatatype.from_text(check.rdtype)
    values = sorted(
        rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset
    )
    if not values:
        return ProbeResult(
            label, False, latency, f"NOERROR but no {check.rdtype} answer for {check.query}"
        )
    got = ", ".join(values[:4]) + (" ..." if len(values) > 4 else "")
    if check.expect:
        have = {_norm_dns(v) for v in values}
        missing = [e for e in check.expect if _norm_dns(e) not in have]
        if missing:
            return ProbeResult(
                label, False, latency, f"answer lacks {', '.join(missing)} (got {_short(got, 80)})"
            )
    return ProbeResult(label, True, latency, f"{rname} in {_fmt_ms(latency)}: {_short(got, 80)}")
