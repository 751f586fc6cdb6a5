"""Times and durations as people read them, in one style everywhere (logs, status,
reports, plans)."""

from __future__ import annotations

import time


def duration(seconds: float) -> str:
    """45s, 3m 05s, 2h 10m, 3d 04h."""
    seconds = round(max(0.0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d {(seconds % 86400) // 3600:02d}h"


def local_time(ts: float | None) -> str:
    """A timestamp in local time with its zone (2026-11-02 14:05:09 CET), or '-' when there
    is none. The zone's abbreviation when the system has one, else its UTC offset."""
    if not ts:
        return "-"
    t = time.localtime(ts)
    zone = time.strftime("%Z", t)
    if not zone or zone[0] in "+-":  # some zones have no abbreviation: show the offset
        zone = utc_offset(t.tm_gmtoff)
    return time.strftime("%Y-%m-%d %H:%M:%S ", t) + zone


def utc_offset(seconds: int | None) -> str:
    """+01:00, -05:30, +00:00."""
    seconds = int(seconds or 0)
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{(seconds % 3600) // 60:02d}"


def iso_time(ts: float) -> str:
    """ISO 8601 in local time with the offset: 2026-11-02T14:05:09+01:00 (log lines)."""
    t = time.localtime(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + utc_offset(t.tm_gmtoff)
