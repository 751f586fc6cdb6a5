"""What a failure notice says is true after the step it stopped at, and the short backoff of
DNS read-backs and verification (from 1 s, doubling, capped at 2 s)."""

from __future__ import annotations

from itertools import islice

from failover.dns.apply import backoff
from failover.runs.engine import where_things_stand
from failover.runs.model import Run


def run() -> Run:
    return Run(
        1, "shop", "failover", "auto", "primary", "standby", "failed", 0.0, None, 1, {}, None
    )


def test_failure_notices_say_what_is_true_after_the_switch() -> None:
    assert where_things_stand(run(), "recheck") == (
        "primary is still the active endpoint and DNS is untouched."
    )
    assert "still the active endpoint" in where_things_stand(run(), "switch_dns")
    activate = where_things_stand(run(), "activate")
    assert activate.startswith("DNS was switched to standby")
    verify = where_things_stand(run(), "verify_dns")
    assert verify == "DNS was switched and standby is the active endpoint; verification is pending."
    assert "primary is still" not in verify and "primary is still" not in where_things_stand(
        run(), "notify"
    )


def test_backoff_starts_at_a_second_doubles_and_is_capped() -> None:
    assert list(islice(backoff(), 5)) == [1.0, 2.0, 2.0, 2.0, 2.0]
    assert list(islice(backoff(0.5, 8.0), 6)) == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
