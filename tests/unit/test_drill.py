"""Drills, the pure parts: the plan, the schedule (due or not; never while busy), the
measurements (RTO, RPO, trend) and the downtime sentence, and the config's drill keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.config.load import parse_config
from failover.errors import ConfigError, UnsafePlan, UsageError
from failover.runs.drill_rules import (
    about,
    compact,
    downtime_sentence,
    drill_blocker,
    drill_due,
    drill_rpo,
    drill_rto,
    drill_target,
    gives_way,
    overdue,
    summarize,
    trend,
)
from failover.runs.model import Run
from failover.runs.plan import plan_drill, plan_manual

CONFIG = """\
sites:
  shop:
    hostname: shop.example.test
    endpoints:
      primary: {address: 192.0.2.10, ssh: {user: root}}
      standby: {address: 192.0.2.20, ssh: {user: root}}
      spare: {address: 192.0.2.30, ssh: {user: root}}
    checks: [{type: tcp, port: 22}]
    failover: {standby: MODE, after_restore: [systemctl restart nginx], DRILL}
    backup: {repository: /var/backups/shop, password: pw, source: primary, paths: [/srv/site]}
"""


def site(mode: str = "cold", drill: str = "drill: {every: 7d, cleanup: [systemctl stop nginx]}"):
    text = CONFIG.replace("MODE", mode).replace("DRILL", drill)
    return parse_config(text, "f.yaml", env={}).config.sites["shop"]


def steps(plan: Any) -> dict[str, str | None]:
    return {s.name: s.skip for s in plan.steps}


# --- the plan ------------------------------------------------------------------------------


def test_a_cold_drill_restores_runs_the_commands_checks_cleans_up_and_never_touches_dns():
    plan = plan_drill("shop", site(), "primary", "standby")
    assert plan.kind == "drill" and (plan.source, plan.target) == ("primary", "standby")
    got = steps(plan)
    assert list(got) == [
        "preflight",
        "restore",
        "verify_current",
        "after_restore",
        "recheck",
        "cleanup",
        "drill_result",
    ]
    assert got["restore"] is None and got["verify_current"] is not None
    assert got["cleanup"] is None
    assert not {"switch_dns", "activate", "verify_dns", "final_backup"} & set(got)


def test_a_warm_drill_compares_instead_of_restoring():
    got = steps(plan_drill("shop", site("warm", "drill: {every: 1d}"), "primary", "standby"))
    assert got["restore"] is not None and got["verify_current"] is None
    assert got["cleanup"] == "no cleanup commands (drill.cleanup)"


def test_no_drill_onto_the_active_endpoint_or_an_unknown_one():
    with pytest.raises(UsageError, match="active endpoint"):
        plan_drill("shop", site(), "standby", "standby")
    with pytest.raises(UsageError, match="no endpoint 'nope'"):
        plan_drill("shop", site(), "primary", "nope")


def test_the_drill_target_is_drill_to_else_the_first_standby():
    assert drill_target(site()) == "standby"
    assert drill_target(site(drill="drill: {to: spare}")) == "spare"


def test_a_switch_never_resumes_a_drill():
    s = site()
    plan = plan_drill("shop", s, "primary", "standby")
    run = Run(1, "shop", "drill", "manual", "primary", "standby", "running", 0.0, None, 1, {}, None)
    run.steps = [
        {"name": st.name, "title": st.title, "status": "pending", "detail": None}
        for st in plan.steps
    ]
    with pytest.raises(UnsafePlan, match="drill running"):
        plan_manual("shop", s, "primary", run, "standby")


@pytest.mark.parametrize(
    ("drill", "message"),
    [
        ('drill: {at: "04:00"}', "set `every` too"),
        ('drill: {every: 7d, at: "4am"}', "not a time of day"),
        ("drill: {every: 7d, to: nope}", "drill.to: 'nope' is not one of the endpoints"),
        ("drill: {every: 0s}", "every must be more than 0"),
        ("drill: {every: 7d, sample: 0}", "sample"),
    ],
)
def test_bad_drill_keys_are_config_errors_with_their_line(drill: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        site(drill=drill)
    assert message in str(raised.value) and "f.yaml:9:" in str(raised.value)


# --- the schedule ------------------------------------------------------------------------------

DAY = 86400.0
WEEK = 7 * DAY


def at(day: int, hour: int, minute: int = 0) -> float:
    """A local time: day N of a fixed month, HH:MM."""
    return datetime(2026, 3, 1 + day, hour, minute).timestamp()


def test_every_without_at_is_due_at_once_then_once_per_period():
    assert drill_due(WEEK, None, None, None, now=at(0, 12))
    assert not drill_due(WEEK, None, at(0, 12), None, now=at(6, 11))
    assert drill_due(WEEK, None, at(0, 12), None, now=at(7, 12))


def test_at_waits_for_the_time_of_day_on_the_first_day_it_is_due():
    seen = at(0, 9)  # the schedule appeared at 09:00: the first drill at 04:00 the next day
    assert not drill_due(WEEK, "04:00", None, seen, now=at(0, 23))
    assert drill_due(WEEK, "04:00", None, seen, now=at(1, 4, 0))
    last = at(1, 4, 0) + 30  # it started 30 s after 04:00
    assert not drill_due(WEEK, "04:00", last, seen, now=at(8, 3, 59))
    assert drill_due(WEEK, "04:00", last, seen, now=at(8, 4, 0))  # a week later, not 8 days
    # a missed 04:00 (the agent was down) is caught up when it comes back
    assert drill_due(WEEK, "04:00", last, seen, now=at(8, 10, 0))


def test_a_drill_by_hand_moves_the_next_scheduled_one():
    manual = at(3, 15)  # a drill at 15:00 on day 3: the next at 04:00 once a week has passed
    assert not drill_due(WEEK, "04:00", manual, at(0, 0), now=at(10, 4, 0))
    assert drill_due(WEEK, "04:00", manual, at(0, 0), now=at(11, 4, 0))
    just_before = at(3, 3, 59)  # never a scheduled drill a minute after one by hand
    assert not drill_due(DAY, "04:00", just_before, at(0, 0), now=at(3, 4, 0))
    assert drill_due(DAY, "04:00", just_before, at(0, 0), now=at(4, 4, 0))


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_daily_at_survives_a_short_day(berlin: None):
    # 29 March 2026 is 23 hours long in Berlin: the next day's 04:00 is still due then
    last = datetime(2026, 3, 28, 4, 0, 30).timestamp()
    now = datetime(2026, 3, 29, 4, 0).timestamp()
    assert now - last < 23 * 3600
    assert not drill_due(DAY, "04:00", last, None, now=now - 60)
    assert drill_due(DAY, "04:00", last, None, now=now)


@settings(max_examples=200, deadline=None)
@given(
    every=st.floats(min_value=60, max_value=30 * DAY),
    last=st.floats(min_value=1.7e9, max_value=1.8e9),
    gap=st.floats(min_value=0, max_value=60 * DAY),
)
def test_never_due_twice_within_a_period_without_at(every: float, last: float, gap: float):
    now = last + gap
    assert drill_due(every, None, last, None, now) == (now - last >= every)


@settings(max_examples=200, deadline=None)
@given(
    every=st.sampled_from([DAY, 2 * DAY, WEEK, 30 * DAY]),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    offset=st.floats(min_value=0, max_value=DAY - 1),
    base=st.floats(min_value=1.75e9, max_value=1.76e9),
)
def test_with_at_at_most_one_drill_per_period(
    every: float, hour: int, minute: int, offset: float, base: float
):
    hhmm = f"{hour:02d}:{minute:02d}"
    last = base + offset
    # within every - 2 h of the last start nothing is due; one period and a day later it is
    for gap in (0.0, 60.0, every / 2, every - 2.5 * 3600):
        assert not drill_due(every, hhmm, last, None, last + gap)
    assert drill_due(every, hhmm, last, None, last + every + DAY)


def blocker(**kw: Any) -> str | None:
    facts: dict[str, Any] = {
        "target": "standby",
        "active": "primary",
        "active_status": "up",
        "open_run": None,
        "backup_busy": False,
        "network_ok": True,
    }
    facts.update(kw)
    return drill_blocker(**facts)


def test_a_drill_starts_only_when_nothing_is_going_on():
    assert blocker() is None
    assert blocker(active="standby") == "standby is the active endpoint"
    assert blocker(target=None) == "the site has no other endpoint to drill onto"
    assert blocker(open_run=(4, "failover")) == "run #4 (failover) is open"
    for status in ("suspect", "down", "recovering"):
        assert blocker(active_status=status) == f"the active endpoint primary is {status}"
    assert blocker(backup_busy=True) == "a backup of the site is due or in progress"
    assert blocker(network_ok=False) == "the agent's own network is down"
    assert blocker(active_status="unknown") is None  # a fresh start: nothing known is wrong


@given(
    status=st.sampled_from(["unknown", "up", "suspect", "down", "recovering"]),
    open_run=st.one_of(
        st.none(), st.tuples(st.integers(1, 99), st.sampled_from(["drill", "migrate"]))
    ),
    backup_busy=st.booleans(),
    network_ok=st.booleans(),
)
def test_never_while_busy(status: str, open_run: Any, backup_busy: bool, network_ok: bool):
    busy = status in ("suspect", "down", "recovering") or open_run or backup_busy or not network_ok
    got = blocker(
        active_status=status, open_run=open_run, backup_busy=backup_busy, network_ok=network_ok
    )
    assert (got is not None) == bool(busy)


def test_a_drill_gives_way_only_to_an_outage():
    assert gives_way("down") and gives_way("recovering")
    assert not any(gives_way(s) for s in ("unknown", "up", "suspect"))


def test_overdue_after_twice_every():
    now = 10 * WEEK
    assert overdue(WEEK, None, None, now)  # nothing known: never passed
    assert not overdue(WEEK, None, now - WEEK, now)  # scheduled a week ago: not yet
    assert overdue(WEEK, None, now - 3 * WEEK, now)
    assert not overdue(WEEK, now - 2 * WEEK + 1, 0, now)
    assert overdue(WEEK, now - 2 * WEEK - 1, 0, now)
    assert not overdue(None, None, None, now)  # drills by hand only


# --- the measurements ----------------------------------------------------------------------------


def step(name: str, started: float | None, finished: float | None, status: str = "done"):
    return {"name": name, "status": status, "started": started, "finished": finished}


def test_rto_is_start_to_checks_passing_without_the_warm_comparison():
    created = 1000.0
    run_steps = [
        step("preflight", 1000.1, 1001.0),
        step("restore", 1001.0, 1060.0),
        step("verify_current", None, None, "skipped"),
        step("after_restore", 1060.0, 1090.0),
        step("recheck", 1090.0, 1100.0),
        step("cleanup", 1100.0, 1105.0),
    ]
    assert drill_rto(run_steps, created, attempts=1) == pytest.approx(100.0)
    warm = [
        step("preflight", 1000.1, 1001.0),
        step("verify_current", 1001.0, 1004.0),
        step("recheck", 1004.0, 1005.0),
    ]
    assert drill_rto(warm, created, attempts=1) == pytest.approx(2.0)
    failed = [step("preflight", 1000.1, 1001.0), step("recheck", 1001.0, 1061.0, "failed")]
    assert drill_rto(failed, created, attempts=1) is None


def test_a_resumed_drill_counts_its_steps_not_the_gap():
    run_steps = [
        step("preflight", 1000.0, 1001.0),
        step("restore", 5000.0, 5050.0),  # resumed an hour later, restored again
        step("recheck", 5050.0, 5052.0),
    ]
    assert drill_rto(run_steps, 1000.0, attempts=2) == pytest.approx(53.0)


@given(
    durations=st.lists(st.floats(min_value=0, max_value=3600), min_size=4, max_size=4),
    gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=4, max_size=4),
)
def test_rto_of_an_uninterrupted_drill_is_at_least_its_steps(
    durations: list[float], gaps: list[float]
):
    t, run_steps = 0.0, []
    for name, took, gap in zip(
        ("preflight", "restore", "after_restore", "recheck"), durations, gaps, strict=True
    ):
        t += gap
        run_steps.append(step(name, t, t + took))
        t += took
    rto = drill_rto(run_steps, 0.0, attempts=1)
    assert rto == pytest.approx(t)
    assert rto >= drill_rto(run_steps, 0.0, attempts=2) - 1e-6  # the gaps count only once


def test_rpo_is_the_snapshot_age_at_the_start():
    assert drill_rpo(1000.0, 400.0) == 600.0
    assert drill_rpo(1000.0, None) is None
    assert drill_rpo(1000.0, 1001.0) == 0.0  # clocks: never negative


def test_trend_compares_the_last_drill_with_the_median_before():
    assert trend([]) is None and trend([60.0]) is None
    rising = trend([60.0, 62.0, 58.0, 100.0])
    assert rising is not None and rising["direction"] == "rising"
    assert rising["median_before"] == 60.0 and rising["last"] == 100.0
    assert trend([60.0, 62.0, 58.0, 61.0])["direction"] == "steady"  # type: ignore[index]
    assert trend([60.0, 62.0, 58.0, 30.0])["direction"] == "falling"  # type: ignore[index]
    assert trend([1000.0] * 30 + [1.0, 1.0])["count"] == 10  # type: ignore[index]


@given(
    values=st.lists(st.floats(min_value=0.1, max_value=1e5), min_size=2, max_size=20),
    scale=st.floats(min_value=0.01, max_value=100),
)
def test_trend_does_not_depend_on_the_unit(values: list[float], scale: float):
    a, b = trend(values), trend([v * scale for v in values])
    assert a is not None and b is not None
    assert a["change"] == pytest.approx(b["change"], rel=1e-6, abs=1e-9)
    if abs(abs(a["change"]) - 0.10) > 1e-6:
        assert a["direction"] == b["direction"]


def test_the_downtime_sentence_of_the_issue():
    assert downtime_sentence(180, 100, 0.999) == (
        "with down_after 3m and the last measured RTO of 1m 40s, an outage costs about "
        "5 minutes; the 99.9% target allows 43 minutes a month"
    )
    assert downtime_sentence(3, 4.24, 0.999).startswith(
        "with down_after 3s and the last measured RTO of 4.2s, an outage costs about 7 seconds"
    )


def test_durations_in_words():
    assert [compact(s) for s in (3, 4.24, 100, 180, 3600, 3900)] == [
        "3s",
        "4.2s",
        "1m 40s",
        "3m",
        "1h",
        "1h 05m",
    ]
    assert [about(s) for s in (0, 1, 7.2, 280, 2592, 4 * 3600, 3 * DAY)] == [
        "0 seconds",
        "1 second",
        "7 seconds",
        "5 minutes",
        "43 minutes",
        "4 hours",
        "3 days",
    ]


def test_summary_of_a_flunked_drill_says_what_failed():
    run = Run(
        7,
        "shop",
        "drill",
        "schedule",
        "primary",
        "standby",
        "flunked",
        1000.0,
        1100.0,
        1,
        {},
        "after_restore: `x` exited with status 1",
    )
    run.steps = [
        {**step("preflight", 1000.0, 1001.0), "detail": "ok", "data": {"snapshot_time": 400.0}},
        {**step("restore", 1001.0, 1050.0), "detail": "restored", "data": {}},
        {**step("after_restore", 1050.0, 1051.0, "failed"), "detail": "`x` exited", "data": {}},
        {**step("recheck", None, None, "skipped"), "detail": "not reached", "data": {}},
    ]
    got = summarize(run)
    assert got["result"] == "failed" and got["failed_step"] == "after_restore"
    assert got["output"] == "`x` exited" and got["rto"] is None and got["rpo"] == 600.0
    assert [s["seconds"] for s in got["steps"]] == [1.0, 49.0, 1.0, None]
