"""A probe's result and the small formatting helpers the probes' one-line details use.

Pure: no I/O, imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProbeResult:
    check: str  # the check's label (check.label)
    ok: bool
    latency_ms: float | None  # None when no answer
    detail: str  # one short line
    warning: str | None = None  # e.g. a certificate about to expire
    http_status: int | None = None  # http/https: the response's status code
    cert_expiry: float | None = None  # https: the certificate's notAfter, unix time


def secs(seconds: float) -> str:
    """A duration in seconds as written in configs: 5s, 0.5s."""
    return f"{seconds:g}s"


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded to the microsecond."""
    return round(seconds * 1000.0, 3)


def fmt_ms(milliseconds: float) -> str:
    return f"{milliseconds:.0f} ms" if milliseconds >= 10 else f"{milliseconds:.1f} ms"


def short(text: str, limit: int = 40) -> str:
    """`text` cut to `limit` characters (with "..."), for quoting an answer in a detail."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
