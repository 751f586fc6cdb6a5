"""Uptime arithmetic: calendar months, the time the agent was watching, the time an endpoint
was down within it. Pure."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Interval:
    start: float
    end: float

    def overlap(self, start: float, end: float) -> float:
        return max(0.0, min(self.end, end) - max(self.start, start))


def month_bounds(ts: float) -> tuple[float, float]:
    d = datetime.fromtimestamp(ts, UTC)
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    days = calendar.monthrange(d.year, d.month)[1]
    return start.timestamp(), start.timestamp() + days * 86400


def months_between(start: float, end: float) -> list[tuple[float, float]]:
    out = []
    cursor = month_bounds(start)[0]
    while cursor < end:
        bounds = month_bounds(cursor)
        out.append(bounds)
        cursor = bounds[1]
    return out


def uptime(
    downtime: list[Interval], watched: list[Interval], start: float, end: float
) -> tuple[float, float, float | None]:
    """(seconds watched, seconds down while watched, uptime fraction or None)."""
    watched_s = sum(w.overlap(start, end) for w in watched)
    down_s = 0.0
    for d in downtime:
        for w in watched:
            lo, hi = max(d.start, w.start, start), min(d.end, w.end, end)
            down_s += max(0.0, hi - lo)
    if watched_s <= 0:
        return 0.0, 0.0, None
    return watched_s, down_s, 1.0 - down_s / watched_s


def watched_intervals(rounds: list[tuple[float, bool]], interval: float) -> list[Interval]:
    """Time covered by conclusive rounds: each round with a working network vouches for
    the `interval` after it; overlapping spans join."""
    out: list[Interval] = []
    for ts, network_ok in rounds:
        if not network_ok:
            if out and out[-1].end > ts:
                out[-1] = Interval(out[-1].start, ts)
            continue
        if out and ts <= out[-1].end:
            out[-1] = Interval(out[-1].start, max(out[-1].end, ts + interval))
        else:
            out.append(Interval(ts, ts + interval))
    return out


def subtract(intervals: list[Interval], holes: list[Interval]) -> list[Interval]:
    """`intervals` without the time in `holes` (maintenance: not counted as watched, so
    neither as up nor as down)."""
    out = list(intervals)
    for hole in holes:
        cut: list[Interval] = []
        for i in out:
            if hole.end <= i.start or hole.start >= i.end:
                cut.append(i)
                continue
            if i.start < hole.start:
                cut.append(Interval(i.start, hole.start))
            if hole.end < i.end:
                cut.append(Interval(hole.end, i.end))
        out = cut
    return out
