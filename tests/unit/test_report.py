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


# --- month verdicts (issue #12: 0 % uptime over the watched time said "within target") ----

from failover.show.uptime import daily_uptime, month_verdict, round_target  # noqa: E402


def test_an_endpoint_down_all_the_watched_time_is_not_within_target() -> None:
    month = month_bounds(ts("2026-11-01T00:00:00"))
    start = ts("2026-11-10T10:00:00")
    watched = [Interval(start, start + 600)]
    down = [Interval(start, start + 600)]  # ten minutes watched, ten minutes down
    v = month_verdict(down, watched, month, now=start + 600, target=0.999, since=start)
    assert v.uptime == 0.0 and v.meets_target is False
    assert v.down == 600 and round(v.allowed_down, 6) == 2592.0
    assert v.outcome == "can still meet" and v.allowance_left == v.allowed_down - 600
    # a whole day down: the month's allowance is spent, whatever comes next
    long = [Interval(start, start + 86400)]
    v = month_verdict(long, [Interval(start, start + 86400)], month, start + 86400, 0.999, start)
    assert v.outcome == "missed" and v.allowance_left < 0


def test_a_finished_month_with_unwatched_time_says_so() -> None:
    month = month_bounds(ts("2026-11-01T00:00:00"))
    watched = [Interval(month[0], month[1] - 86400)]
    v = month_verdict([], watched, month, now=month[1] + 10, target=0.999)
    assert v.outcome == "met while watched" and v.unwatched == 86400 and v.uptime == 1.0
    v = month_verdict([], [Interval(*month)], month, now=month[1] + 10, target=0.999)
    assert v.outcome == "met"


def test_target_is_rounded_and_days_are_utc_days() -> None:
    assert round_target(99.9 / 100) == 0.999
    start = ts("2026-11-10T12:00:00")
    days = daily_uptime([Interval(start, start + 3600)], [Interval(start - 86400, start + 86400)],
                        start - 86400, start + 86400)  # fmt: skip
    assert [d.start for d in days] == [ts("2026-11-09T00:00:00"), ts("2026-11-10T00:00:00"),
                                       ts("2026-11-11T00:00:00")]  # fmt: skip
    assert days[1].down == 3600 and days[0].down == 0
