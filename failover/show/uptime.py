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


def clip(intervals: list[Interval], start: float, end: float) -> list[Interval]:
    """The parts of `intervals` inside [start, end], joined where they overlap, in order."""
    parts = sorted(
        (Interval(max(i.start, start), min(i.end, end)) for i in intervals),
        key=lambda i: i.start,
    )
    out: list[Interval] = []
    for part in parts:
        if part.end <= part.start:
            continue
        if out and part.start <= out[-1].end:
            out[-1] = Interval(out[-1].start, max(out[-1].end, part.end))
        else:
            out.append(part)
    return out


def gaps(covered: list[Interval], start: float, end: float) -> list[Interval]:
    """The parts of [start, end] that `covered` leaves out (unwatched time, say)."""
    out: list[Interval] = []
    cursor = start
    for part in clip(covered, start, end):
        if part.start > cursor:
            out.append(Interval(cursor, part.start))
        cursor = max(cursor, part.end)
    if cursor < end:
        out.append(Interval(cursor, end))
    return out


def day_bounds(start: float, end: float) -> list[tuple[float, float]]:
    """The UTC calendar days that [start, end) touches."""
    day = 86400
    first = start - start % day
    return [(d, d + day) for d in range(int(first), int(end), day)] if end > start else []


@dataclass(frozen=True)
class MonthVerdict:
    """A calendar month against an uptime target, said honestly: uptime over the time that
    was watched, and whether the month's allowance of downtime is spent."""

    watched: float  # seconds watched (with a working network) so far in the month
    down: float  # seconds down while watched
    unwatched: float  # seconds of the month so far nobody watched
    uptime: float | None  # over the watched time; None when nothing was watched
    meets_target: bool | None  # the watched time's uptime is at least the target
    allowed_down: float  # the whole month's allowance at the target
    allowance_left: float  # negative: exceeded by this much
    outcome: str  # "missed", "met", "met while watched", "can still meet", "no data"

    @property
    def sentence(self) -> str:
        return {
            "missed": "missed: the month's allowance of downtime is spent",
            "met": "met",
            "met while watched": "met over the watched time (some of the month was not watched)",
            "can still meet": "can still meet the target if up for the rest of the month",
            "no data": "nothing watched",
        }[self.outcome]


def month_verdict(
    down: list[Interval],
    watched: list[Interval],
    month: tuple[float, float],
    now: float,
    target: float,
    since: float | None = None,
) -> MonthVerdict:
    """The verdict for one calendar month (`month` = its bounds) as of `now`; `since` is
    where the report begins (the time before it counts as not asked about)."""
    m_start, m_end = month
    lo = max(m_start, since or m_start)
    hi = min(m_end, now)
    watched_s, down_s, frac = uptime(down, watched, lo, hi)
    unwatched_s = sum(g.end - g.start for g in gaps(watched, lo, hi)) if hi > lo else 0.0
    allowed = (1.0 - target) * (m_end - m_start)
    left = allowed - down_s
    if frac is None:
        outcome = "no data"
    elif down_s > allowed:
        outcome = "missed"
    elif now < m_end:
        outcome = "can still meet"
    elif unwatched_s > 1.0:
        outcome = "met while watched"
    else:
        outcome = "met"
    return MonthVerdict(
        watched=watched_s,
        down=down_s,
        unwatched=unwatched_s,
        uptime=frac,
        meets_target=None if frac is None else frac >= target,
        allowed_down=allowed,
        allowance_left=left,
        outcome=outcome,
    )


@dataclass(frozen=True)
class Day:
    start: float
    watched: float
    down: float
    uptime: float | None  # None: not watched that day


def daily_uptime(
    down: list[Interval], watched: list[Interval], start: float, end: float
) -> list[Day]:
    """Uptime per UTC day over [start, end) (the status page's bars)."""
    out = []
    for d_start, d_end in day_bounds(start, end):
        w, dn, frac = uptime(down, watched, max(d_start, start), min(d_end, end))
        out.append(Day(d_start, w, dn, frac))
    return out


def round_target(target: float) -> float:
    """0.999 from a percentage such as 99.9 / 100 (no 0.9990000000000001)."""
    return round(target, 9)


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
