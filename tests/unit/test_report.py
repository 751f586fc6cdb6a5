"""The report's arithmetic: watched time, downtime, monthly uptime against a target."""

from __future__ import annotations

from datetime import UTC, datetime

from failover.show.uptime import Interval, month_bounds, months_between, uptime, watched_intervals


def ts(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp()


def test_month_bounds_and_iteration():
    start, end = month_bounds(ts("2026-02-14T10:00:00"))
    assert start == ts("2026-02-01T00:00:00") and end == ts("2026-03-01T00:00:00")
    months = months_between(ts("2026-11-20T00:00:00"), ts("2027-01-02T00:00:00"))
    assert [m[0] for m in months] == [
        ts("2026-11-01T00:00:00"),
        ts("2026-12-01T00:00:00"),
        ts("2027-01-01T00:00:00"),
    ]


def test_watched_intervals_join_rounds_and_drop_offline_time():
    rounds = [
        (0, True),
        (10, True),
        (20, True),
        (30, False),
        (40, False),
        (50, True),
        (60, True),
        (200, True),
        (210, True),
    ]
    assert watched_intervals(rounds, interval=10) == [
        Interval(0, 30),
        Interval(50, 70),
        Interval(200, 220),
    ]
    # an offline round cuts short the time the round before it vouched for
    assert watched_intervals([(0, True), (5, False)], interval=10) == [Interval(0, 5)]


def test_uptime_counts_only_watched_downtime():
    watched = [Interval(0, 1000)]
    down = [Interval(900, 1100)]  # the last 100 watched seconds, and 100 unwatched
    watched_s, down_s, frac = uptime(down, watched, 0, 2000)
    assert (watched_s, down_s) == (1000, 100) and frac == 0.9
    assert uptime([], [], 0, 10) == (0.0, 0.0, None)


def test_eighteen_hours_down_in_a_month_misses_three_nines():
    start, end = month_bounds(ts("2026-11-01T00:00:00"))
    down = [Interval(ts("2026-11-10T02:00:00"), ts("2026-11-10T20:00:00"))]
    _, down_s, frac = uptime(down, [Interval(start, end)], start, end)
    assert down_s == 18 * 3600
    assert frac is not None and round(frac, 4) == 0.975
    assert down_s > (1 - 0.999) * (end - start)
