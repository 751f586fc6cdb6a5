"""Maintenance decided by a pure function (maintenance/window.py): weekly windows (past
midnight, in a time zone, across daylight saving), date ranges, a pause that wins and one
that runs out; uptime without maintenance time; reminders due."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from failover.config.load import parse_config
from failover.maintenance.window import Pause, decide, describe_window
from failover.show.uptime import Interval, subtract
from failover.watch.reminders import reminder_due

SITE = """\
sites:
  shop:
    hostname: shop.test
    endpoints: {{a: {{address: 127.0.0.1}}}}
    checks: [{{type: tcp, port: 1, timeout: 1s}}]
    maintenance: {windows}
"""


def windows(text: str) -> list[object]:
    return list(parse_config(SITE.format(windows=text), "f.yaml").config.sites["shop"].maintenance)


def zones(name: str | None) -> ZoneInfo | None:
    return ZoneInfo(name) if name else None


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_a_weekly_window_opens_on_its_days_and_runs_past_midnight() -> None:
    ws = windows('[{days: [sun], at: "23:30", duration: 1h, timezone: UTC, reason: updates}]')
    # 2026-12-06 is a Sunday
    assert decide(at("2026-12-06 23:29"), ws, None, zones) is None
    found = decide(at("2026-12-06 23:30"), ws, None, zones)
    assert found is not None and found.kind == "window" and found.reason == "updates"
    assert found.until == at("2026-12-07 00:30")
    assert decide(at("2026-12-07 00:29"), ws, None, zones) is not None  # Monday, still open
    assert decide(at("2026-12-07 00:30"), ws, None, zones) is None
    assert decide(at("2026-12-13 23:45"), ws, None, zones) is not None  # next Sunday
    assert decide(at("2026-12-09 23:45"), ws, None, zones) is None  # a Wednesday


def test_a_window_in_a_time_zone_keeps_its_local_time_across_daylight_saving() -> None:
    ws = windows('[{days: [sun], at: "03:00", duration: 30m, timezone: Europe/Berlin}]')
    # winter (UTC+1) and summer (UTC+2): the same local 03:00 is another UTC hour
    assert decide(at("2026-01-04 02:10"), ws, None, zones) is not None
    assert decide(at("2026-07-05 01:10"), ws, None, zones) is not None
    assert decide(at("2026-07-05 02:10"), ws, None, zones) is None


def test_a_date_window_and_a_pause() -> None:
    ws = windows('[{from: "2026-12-24 08:00", until: "2026-12-24 18:00", timezone: UTC}]')
    assert decide(at("2026-12-24 07:59"), ws, None, zones) is None
    assert decide(at("2026-12-24 12:00"), ws, None, zones) is not None
    assert decide(at("2026-12-24 18:00"), ws, None, zones) is None
    pause = Pause(since=at("2026-12-24 07:00"), until=at("2026-12-24 09:00"), reason="kernel")
    first = decide(at("2026-12-24 08:30"), ws, pause, zones)
    assert first is not None and first.kind == "pause" and first.reason == "kernel"  # a person wins
    after = decide(at("2026-12-24 09:00"), ws, pause, zones)
    assert after is not None and after.kind == "window"  # the pause ran out; the window goes on
    assert pause.expired(at("2026-12-24 09:00")) and not pause.expired(at("2026-12-24 08:59"))
    forever = Pause(since=0.0, until=None)
    assert decide(at("2030-01-01 00:00"), [], forever, zones) is not None
    assert "until resumed" in (decide(0.0, [], forever, zones) or forever).summary  # type: ignore[union-attr]


def test_windows_are_described_for_status() -> None:
    ws = windows(
        '[{days: [sat, sun], at: "02:00", duration: 90m, reason: backups}, {at: "04:00", duration: 5m}]'
    )
    assert describe_window(ws[0]) == "sat,sun 02:00 for 1h 30m: backups"
    assert describe_window(ws[1]) == "daily 04:00 for 5m 00s"


def test_invalid_windows_are_config_errors() -> None:
    import pytest

    from failover.errors import ConfigError

    for text, fragment in [
        ('[{days: [sunday], at: "03:00", duration: 1h}]', "did you mean sun?"),
        ('[{at: "25:00", duration: 1h}]', "expected a time of day"),
        ('[{at: "03:00", duration: 8d}]', "less than a week"),
        ('[{from: "2026-12-24 08:00", until: "2026-12-24 07:00"}]', "must be after"),
        ('[{at: "03:00", duration: 1h, timezone: Mars/Olympus}]', "unknown time zone"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_config(SITE.format(windows=text), "f.yaml")
        assert fragment in str(caught.value), (text, str(caught.value))
        assert "maintenance[0]" in str(caught.value) and ".weekly" not in str(caught.value)


intervals = st.lists(
    st.tuples(st.floats(0, 1000), st.floats(0, 100)).map(lambda t: Interval(t[0], t[0] + t[1])),
    max_size=6,
)


@given(intervals, intervals)
def test_subtracting_maintenance_removes_exactly_its_time(
    spans: list[Interval], holes: list[Interval]
) -> None:
    def covered(xs: list[Interval], t: float) -> bool:
        return any(i.start <= t < i.end for i in xs)

    left = subtract(spans, holes)
    for t in [x / 4 for x in range(0, 4400)]:
        assert covered(left, t) == (covered(spans, t) and not covered(holes, t))


def test_reminders_start_with_the_outage_then_come_every_period() -> None:
    assert reminder_due(None, 1000.0, 3600, 1000.0) == "start"
    assert reminder_due(1000.0, 1000.0, 3600, 4599.0) == "wait"
    assert reminder_due(1000.0, 1000.0, 3600, 4600.0) == "send"
    # a reminder from an earlier outage does not count for a new one
    assert reminder_due(500.0, 1000.0, 3600, 6000.0) == "start"


def test_uptime_is_computed_without_maintenance() -> None:
    from failover.show.uptime import uptime

    watched = subtract([Interval(0, 1000)], [Interval(100, 300)])
    down = [Interval(150, 400)]  # down during the maintenance and 100 s after it
    watched_s, down_s, frac = uptime(down, watched, 0, 1000)
    assert (watched_s, down_s) == (800.0, 100.0) and frac == 1 - 100 / 800
