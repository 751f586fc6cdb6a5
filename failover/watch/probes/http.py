"""The http and https probes: raw asyncio HTTP/1.1 to an endpoint's address, with the site's
name as Host, TLS SNI and the name the certificate is verified against.

TLS runs over memory BIOs on a plain stream (see _Connection). HTTPS is verified with
OpenSSL's default trust store; SSL_CERT_FILE / SSL_CERT_DIR override it (tests point
SSL_CERT_FILE at their own CA). cryptography is imported only to read an unverified
certificate's expiry.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from failover.watch.probes.common import ProbeError, ProbeState, describe_error
from failover.watch.probes.result import ProbeResult, fmt_ms, ms, secs, short
from failover.watch.probes.wire import (
    HEAD_LIMIT,
    ChunkedDecoder,
    HttpProtocolError,
    body_framing,
    build_request,
    charset,
    host_header,
    parse_head,
    status_list,
)

if TYPE_CHECKING:
    from failover.config.models import HttpCheck

BODY_LIMIT = 1024 * 1024  # bytes of body read at most; the rest is ignored
_READ_SIZE = 64 * 1024

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


class _Wire(asyncio.Protocol):
    """The bytes of one connection as they arrive, for one reader (`recv`). Leaner than
    asyncio's streams (no StreamReader, StreamWriter and their callbacks per connection),
    which is most of the engine's CPU per probe; reading pauses while more than
    _READ_SIZE bytes wait unread, so a fast server cannot fill memory."""

    __slots__ = ("data", "eof", "error", "paused", "transport", "waiter")

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self.paused = False
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > _READ_SIZE and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> bytes:
        """What has arrived (waiting for something); b"" once the server has closed."""
        while not self.data and not self.eof:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.data:
            data = bytes(self.data)
            self.data.clear()
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
            return data
        if self.error is not None:
            raise self.error
        return b""


class _Connection:
    """A client connection (a _Wire on a plain socket transport), with TLS done here
    through memory BIOs (asyncio's own TLS transport allocates a 256 KiB buffer per
    connection, which costs both memory and CPU at a thousand concurrent probes), and a
    small read buffer."""

    __slots__ = ("_in", "_out", "buf", "tls", "transport", "wire")

    def __init__(self, transport: asyncio.Transport, wire: _Wire) -> None:
        self.transport = transport
        self.wire = wire
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
                    data = await self.wire.recv()
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
            self.transport.write(self._out.read())

    async def send(self, data: bytes) -> None:
        # A request is small: the transport takes it whole, there is nothing to drain.
        if self.tls is not None:
            self.tls.write(data)
            self._flush()
        else:
            self.transport.write(data)

    async def _recv(self) -> bytes:
        """The next piece of (decrypted) data; b"" when the server has closed."""
        if self.tls is None:
            return await self.wire.recv()
        assert self._in is not None
        while True:
            try:
                return self.tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                self._flush()  # e.g. TLS 1.3 key updates
                data = await self.wire.recv()
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
            self.transport.abort()
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


def _regex_matches(pattern: str, text: str) -> bool:
    """RE2: linear in the body whatever the pattern (see regex.py)."""
    from failover.watch.probes.regex import search

    return search(pattern, text)


async def probe_http(
    check: HttpCheck, address: str, hostname: str | None, state: ProbeState
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
    expiry: float | None = None
    try:
        state.phase = "connect"
        transport, wire = await asyncio.get_running_loop().create_connection(_Wire, address, port)
        conn = _Connection(transport, wire)
        if ctx is not None:
            state.phase = "TLS handshake"
            tls = await conn.start_tls(ctx, name)
            try:
                not_after = _not_after(tls, check.tls_verify)
            except Exception as exc:
                state.warning = f"cannot read the certificate's expiry: {describe_error(exc)}"
            else:
                if not_after is not None:
                    expiry = not_after.timestamp()
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
    latency = ms(elapsed)
    took = f"in {fmt_ms(latency)}"
    warning = state.warning
    if not check.status_ok(head.status):
        return ProbeResult(
            label,
            False,
            latency,
            f"status {head.status} not in {status_list(check.expect_status)}",
            warning,
            http_status=head.status,
            cert_expiry=expiry,
        )
    if check.expect_body is not None or check.expect_body_regex is not None:
        encoding = charset(head)
        try:
            text = body.decode(encoding, errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        if check.expect_body is not None and check.expect_body not in text:
            return ProbeResult(
                label,
                False,
                latency,
                f"body lacks {short(check.expect_body)!r}",
                warning,
                http_status=head.status,
                cert_expiry=expiry,
            )
        if check.expect_body_regex is not None and not _regex_matches(
            check.expect_body_regex, text
        ):
            return ProbeResult(
                label,
                False,
                latency,
                f"body does not match /{short(check.expect_body_regex)}/",
                warning,
                http_status=head.status,
                cert_expiry=expiry,
            )
    if check.max_latency is not None and elapsed > check.max_latency:
        return ProbeResult(
            label,
            False,
            latency,
            f"HTTP {head.status} {took}, slower than {secs(check.max_latency)}",
            warning,
            http_status=head.status,
            cert_expiry=expiry,
        )
    return ProbeResult(
        label,
        True,
        latency,
        f"HTTP {head.status} {took}",
        warning,
        http_status=head.status,
        cert_expiry=expiry,
    )
