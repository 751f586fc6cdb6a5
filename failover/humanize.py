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
    """A timestamp in local time, or '-' when there is none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"
