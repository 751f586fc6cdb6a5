"""Pure backup logic: health, schedules, freshness of a set."""

from __future__ import annotations

from datetime import datetime

import pytest

from failover.backup.schedule import (
    backup_due,
    backup_health,
    last_scheduled,
    set_freshness,
    verify_due,
)

H = 3600.0


@pytest.mark.parametrize(
    ("snapshot", "ok", "expected"),
    [
        (None, None, "unknown"),
        (None, True, "unknown"),
        (None, False, "failing"),
        (1000.0, False, "failing"),  # failing beats fresh
        (1000.0, None, "fresh"),
        (1000.0, True, "fresh"),
        (1000.0 - 26 * H - 1, True, "stale"),
        (1000.0 - 26 * H, True, "fresh"),  # exactly max_age is still fresh
        (2000.0, True, "fresh"),  # clock skew: a snapshot from the future
    ],
)
def test_backup_health(snapshot, ok, expected):
    assert backup_health(snapshot, ok, 26 * H, 1000.0) == expected


def due(**kw):
    args = {
        "every": 6 * H,
        "at": [],
        "retry_after": 300.0,
        "last_success": None,
        "last_attempt": None,
        "last_attempt_ok": None,
        "now": 100 * H,
    }
    args.update(kw)
    return backup_due(**args)


def test_due_first_time_and_by_interval():
    assert due()
    assert not due(every=None)
    assert not due(last_success=99 * H, last_attempt=99 * H, last_attempt_ok=True)
    assert due(last_success=94 * H, last_attempt=94 * H, last_attempt_ok=True)


def test_failed_run_is_retried_never_counted_done():
    # a success an hour ago, then a failure: the failure is retried after retry_after
    base = {"last_success": 99 * H, "last_attempt_ok": False}
    assert not due(last_attempt=100 * H - 60, **base)
    assert due(last_attempt=100 * H - 301, **base)


def test_daily_time():
    now = datetime(2026, 5, 4, 3, 40).timestamp()
    slot = datetime(2026, 5, 4, 3, 30).timestamp()
    assert last_scheduled(["03:30"], now) == slot
    assert last_scheduled(["03:30", "23:00"], now) == slot
    assert last_scheduled(["04:00"], now) == datetime(2026, 5, 3, 4, 0).timestamp()
    assert due(
        every=None,
        at=["03:30"],
        last_success=slot - 60,
        last_attempt=slot - 60,
        last_attempt_ok=True,
        now=now,
    )
    assert not due(
        every=None,
        at=["03:30"],
        last_success=slot + 5,
        last_attempt=slot + 5,
        last_attempt_ok=True,
        now=now,
    )


def test_verify_due():
    assert not verify_due(None, None, None, 300, 1000)
    assert verify_due(7 * 86400, None, None, 300, 1000)
    assert not verify_due(7 * 86400, 900, True, 300, 1000)
    assert verify_due(7 * 86400, 600, False, 300, 1000)
    assert verify_due(100, 800, True, 300, 1000)


def test_set_freshness_is_the_stalest_part():
    assert set_freshness({"files": 10.0, "postgres-shop": 5.0}) == 5.0
    assert set_freshness({"files": 10.0, "postgres-shop": None}) is None
    assert set_freshness({}) is None
