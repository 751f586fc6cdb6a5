"""Durations, read and written: PURE. The one parser behind every duration the tool takes,
in the config (`interval: 30s`) and on the command line (`dns set --deadline 2m`).

Accepted: a number of seconds (`90`, `0.5`), or numbers with units, largest first, each
unit at most once: `250ms`, `90s`, `5m`, `1.5h`, `1h30m`, `2d`, `1w`, `1d12h`. Rejected:
anything not finite (`.nan`, `.inf`), negative, or longer than `MAX_SECONDS` (400 days;
no watch, backup or retention period needs more, and a typo such as `30d` for `30s` is
still caught by the fields' own limits).
"""

from __future__ import annotations

import math
import re

MAX_SECONDS = 400 * 86400.0
EXAMPLES = "30s, 5m, 1h30m"

UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = list(UNITS)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
PATTERN = r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?\s*(w|d|h|m|s|ms)\s*)+)$"
"""The accepted text, for the JSON schema (order and repetition are checked in code)."""


class DurationError(ValueError):
    """A value that is not an acceptable duration; the message is one line to show."""


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a text such as `1h30m`; DurationError else."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration such as {EXAMPLES}")
    if isinstance(value, int):
        if value > MAX_SECONDS:  # also keeps float(10**400) from raising OverflowError
            raise DurationError(_too_long())
        seconds = float(value)
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise DurationError(f"expected a duration such as {EXAMPLES}")
    return check_seconds(seconds)


def check_seconds(seconds: float) -> float:
    """`seconds` if it is a finite, non-negative duration within the limit."""
    if math.isnan(seconds):
        raise DurationError("a duration must be a number, not NaN")
    if seconds < 0:
        raise DurationError("a duration cannot be negative")
    if math.isinf(seconds) or seconds > MAX_SECONDS:
        raise DurationError(_too_long())
    return seconds


def _too_long() -> str:
    return f"a duration cannot be longer than {format_duration(MAX_SECONDS)}"


def _parse_text(text: str) -> float:
    body = text.strip()
    if len(body) > 64 or not body:
        raise DurationError(f"expected a duration such as {EXAMPLES}, got {_shown(text)}")
    if _NUMBER.match(body):
        return _finite(float(body), text)
    total, pos, last = 0.0, 0, -1
    for m in _PART.finditer(body):
        if body[pos : m.start()].strip():
            break
        rank = _ORDER.index(m.group(2))
        if rank <= last:
            raise DurationError(
                f"units of a duration go largest first, each once (such as 1h30m), "
                f"got {_shown(text)}"
            )
        last, pos = rank, m.end()
        total += _finite(float(m.group(1)), text) * UNITS[m.group(2)]
    if pos == 0 or body[pos:].strip():
        raise DurationError(f"expected a duration such as {EXAMPLES}, got {_shown(text)}")
    return total


def _finite(number: float, text: str) -> float:
    if not math.isfinite(number):
        raise DurationError(f"a duration cannot be longer than {format_duration(MAX_SECONDS)}")
    return number


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def format_duration(seconds: float) -> str:
    """A duration as text: whole days, hours or minutes when it is one (`26h`, `30m`),
    else seconds (`90s`)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


__all__ = [
    "MAX_SECONDS",
    "DurationError",
    "check_seconds",
    "format_duration",
    "parse_duration",
]
