"""Wire formats the probes speak: HTTP/1.1 responses (status line and headers, body framing,
chunked decoding) and requests, and ICMP echo request/reply packets.

Pure: bytes in, values out; no sockets, no asyncio, no TLS. The probes in http.py and
icmp.py do the I/O around these.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from failover.watch.probes.result import short

USER_AGENT = "failover-probe/0.1"
HEAD_LIMIT = 64 * 1024  # status line + headers (and a chunked body's trailers)
_CHUNK_SIZE_LINE_LIMIT = 4096

# --- HTTP/1.1 -------------------------------------------------------------------------------


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
        raise HttpProtocolError(f"not an HTTP status line: {short(repr(status_line)[2:-1])}")
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
            raise HttpProtocolError(f"malformed header line: {short(repr(line)[2:-1])}")
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
            raise HttpProtocolError(f"invalid Content-Length {short(raw)!r}")
        return ("length", int(raw))
    return ("close", None)


_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (chunk extensions after ";" are ignored)."""
    size_text = line.split(b";", 1)[0].strip()
    if not size_text or not all(c in _HEX_DIGITS for c in size_text):
        raise HttpProtocolError(f"bad chunk size {short(repr(size_text)[2:-1])!r}")
    return int(size_text, 16)


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
        while True:  # each step consumes what it can and says whether to go on
            if self._state == "size":
                more = self._size_line()
            elif self._state == "data":
                more = self._data(out)
            elif self._state == "data_crlf":
                more = self._data_end()
            else:
                more = self._trailer_line()
            if not more:
                break
        return bytes(out)

    def _line(self, limit: int, what: str) -> bytes | None:
        """The next line without its line ending, or None until it is complete."""
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > limit:
                raise HttpProtocolError(f"{what} too long")
            return None
        line = self._buf[:end].rstrip(b"\r")
        self._buf = self._buf[end + 1 :]
        return line

    def _size_line(self) -> bool:
        line = self._line(_CHUNK_SIZE_LINE_LIMIT, "chunk size line")
        if line is None:
            return False
        size = _chunk_size(line)
        if size == 0:
            self._state = "trailer"
        else:
            self._remaining = size
            self._state = "data"
        return True

    def _data(self, out: bytearray) -> bool:
        if not self._buf:
            return False
        take = self._buf[: self._remaining]
        out += take
        self._buf = self._buf[len(take) :]
        self._remaining -= len(take)
        if self._remaining == 0:
            self._state = "data_crlf"
        return True

    def _data_end(self) -> bool:
        """The line ending after a chunk's data (CRLF, or a bare LF)."""
        if self._buf.startswith(b"\r\n"):
            self._buf = self._buf[2:]
        elif self._buf.startswith(b"\n"):
            self._buf = self._buf[1:]
        elif self._buf in (b"", b"\r"):
            return False
        else:
            raise HttpProtocolError("missing CRLF after chunk data")
        self._state = "size"
        return True

    def _trailer_line(self) -> bool:
        """Trailer header lines, skipped, until the empty line that ends the body."""
        line = self._line(HEAD_LIMIT, "chunked trailer")
        if line is None:
            return False
        if not line:
            self.done = True  # whatever follows the body is ignored
            return False
        return True


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


def charset(head: ResponseHead) -> str:
    """The charset a response's Content-Type names (utf-8 when it names none)."""
    ctype = head.get("content-type") or ""
    m = re.search(r"charset=\"?([A-Za-z0-9._-]+)", ctype)
    return m.group(1) if m else "utf-8"


def status_list(statuses: Iterable[int | str]) -> str:
    """Expected statuses as a detail shows them: [200, 301-302, 2xx]."""
    return "[" + ", ".join(str(s) for s in statuses) + "]"


# --- ICMP -----------------------------------------------------------------------------------


def icmp_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
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
