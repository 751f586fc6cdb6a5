"""Is a site in maintenance at a given time? Pure: the windows of the config, the pause a
person set (if any) and the time come in; the answer (what kind, until when, why) goes
out. A pause wins over a window (a person said why); a pause that has run out is no
maintenance (`expired` tells the caller to remove it and say so).

Weekly windows open on their `days` at `at` in their time zone (the machine's local time
when none) and last `duration`, also past midnight and into the next week; date windows
run from `from` to `until`. Daylight saving changes are the time zone's business: a window
at 02:30 on a day that skips 02:30 opens at the same instant datetime gives for it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from datetime import time as clock
from typing import TYPE_CHECKING, Any, Literal

from failover.humanize import duration, local_time

if TYPE_CHECKING:
    from failover.config.maintenance import DateWindow, WeeklyWindow

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Zone = Callable[[str | None], tzinfo | None]  # a time zone's name -> tzinfo (None: local)


@dataclass(frozen=True)
class Pause:
    """`failover pause SITE [--for D] [--reason R]`, as kept in the state."""

    since: float
    until: float | None  # None: until `failover resume`
    reason: str | None = None

    def expired(self, now: float) -> bool:
        return self.until is not None and now >= self.until


@dataclass(frozen=True)
class Active:
    """The maintenance a site is in."""

    kind: Literal["pause", "window"]
    start: float
    until: float | None
    reason: str | None

    @property
    def summary(self) -> str:
        what = "paused" if self.kind == "pause" else "maintenance window"
        until = f" until {local_time(self.until)}" if self.until is not None else " until resumed"
        return what + until + (f": {self.reason}" if self.reason else "")

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "until": self.until,
            "remaining": None if self.until is None else max(0.0, self.until - now),
            "reason": self.reason,
            "summary": self.summary,
        }


def _local(zone: tzinfo | None, ts: float) -> datetime:
    return datetime.fromtimestamp(ts, zone) if zone is not None else datetime.fromtimestamp(ts)


def weekly_open(
    window: WeeklyWindow, now: float, zone: tzinfo | None
) -> tuple[float, float] | None:
    """(start, end) of the occurrence of a weekly window open at `now`, or None."""
    today = _local(zone, now).date()
    hours, minutes = (int(x) for x in window.at.split(":"))
    for back in range(8):  # a window lasts less than a week: one started up to 7 days ago
        day = today - timedelta(days=back)
        if DAYS[day.weekday()] not in window.days:
            continue
        start = datetime.combine(day, clock(hours, minutes), tzinfo=zone).timestamp()
        if start <= now < start + window.duration:
            return start, start + window.duration
    return None


def _stamp(value: datetime, zone: tzinfo | None) -> float:
    if value.tzinfo is None and zone is not None:
        value = value.replace(tzinfo=zone)
    return value.timestamp()


def dates_open(window: DateWindow, now: float, zone: tzinfo | None) -> tuple[float, float] | None:
    start, end = _stamp(window.from_, zone), _stamp(window.until, zone)
    return (start, end) if start <= now < end else None


def window_open(window: Any, now: float, zones: Zone) -> tuple[float, float] | None:
    zone = zones(window.timezone)
    if hasattr(window, "days"):
        return weekly_open(window, now, zone)
    return dates_open(window, now, zone)


def decide(now: float, windows: Sequence[Any], pause: Pause | None, zones: Zone) -> Active | None:
    """The maintenance in force at `now`, or None."""
    if pause is not None and not pause.expired(now):
        return Active("pause", pause.since, pause.until, pause.reason)
    for window in windows:
        found = window_open(window, now, zones)
        if found is not None:
            return Active("window", found[0], found[1], window.reason)
    return None


def describe_window(window: Any) -> str:
    """One line for a window, as the README and status write it."""
    tz = f" {window.timezone}" if window.timezone else ""
    why = f": {window.reason}" if window.reason else ""
    if hasattr(window, "days"):
        days = "daily" if len(window.days) == 7 else ",".join(window.days)
        return f"{days} {window.at}{tz} for {duration(window.duration)}{why}"
    return f"{window.from_:%Y-%m-%d %H:%M} to {window.until:%Y-%m-%d %H:%M}{tz}{why}"
