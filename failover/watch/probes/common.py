"""What every probe shares: its progress (for a timeout's detail), ProbeError, and the
one-line description of whatever a probe raised.

Not pure (describe_error knows ssl's and asyncio's exceptions); the probes and the engine
import it, it imports none of them.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import ssl

from failover.watch.probes.result import short
from failover.watch.probes.wire import HttpProtocolError


class ProbeState:
    """What a probe was doing (for timeout details) and what it found so far."""

    __slots__ = ("phase", "warning")

    def __init__(self) -> None:
        self.phase = ""
        self.warning: str | None = None


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
    return f"{name}: {short(text, 120)}" if text else name


def is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
