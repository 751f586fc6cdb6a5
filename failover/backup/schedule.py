"""When a backup set is due and how healthy it is: PURE (no store, no restic, no clock).

Every function takes `now` and the set's stored state (a row of the backup_state table, as
a dict: see failover.backup.journal) and answers from them alone, so that a cron one-shot
and the daemon decide alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.config.backup import BackupSet

HEALTHS = ("fresh", "stale", "failing", "unknown")
READ_EVERY_MAX = 3600.0  # read the repository's snapshots at least hourly


def backup_health(
    last_snapshot_time: float | None, last_run_ok: bool | None, max_age: float, now: float
) -> str:
    """fresh, stale (newest good snapshot older than max_age), failing (the last run failed)
    or unknown (nothing known yet)."""
    if last_run_ok is False:
        return "failing"
    if last_snapshot_time is None:
        return "unknown"
    if now - last_snapshot_time > max_age:
        return "stale"
    return "fresh"


def last_scheduled(at: Sequence[str], now: float) -> float | None:
    """The latest daily time (HH:MM, local) at or before now."""
    if not at:
        return None
    current = datetime.fromtimestamp(now)
    best = None
    for item in at:
        hour, minute = (int(x) for x in item.split(":"))
        candidate = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if candidate > current:
            candidate -= timedelta(days=1)
        ts = candidate.timestamp()
        best = ts if best is None or ts > best else best
    return best


def backup_due(
    *,
    every: float | None,
    at: Sequence[str],
    retry_after: float,
    last_success: float | None,
    last_attempt: float | None,
    last_attempt_ok: bool | None,
    now: float,
) -> bool:
    """Is a scheduled backup due? A failed attempt never counts as done: it is retried once
    retry_after has passed."""
    if every is None and not at:
        return False
    if last_attempt_ok is False and last_attempt is not None:
        return now - last_attempt >= retry_after
    if last_success is None:
        return True
    if every is not None and now - last_success >= every:
        return True
    slot = last_scheduled(at, now)
    return slot is not None and last_success < slot


def verify_due(
    verify_every: float | None,
    last_verify: float | None,
    last_verify_ok: bool | None,
    retry_after: float,
    now: float,
) -> bool:
    if verify_every is None:
        return False
    if last_verify is None:
        return True
    if last_verify_ok is False:
        return now - last_verify >= retry_after
    return now - last_verify >= verify_every


def read_due(max_age: float, repo_read: float | None, now: float) -> bool:
    """Is it time to read the repository's snapshots (to learn the set's freshness)? Four
    times per max_age, at least hourly."""
    return repo_read is None or now - repo_read >= min(max_age / 4, READ_EVERY_MAX)


def work_due(bset: BackupSet, state: Mapping[str, Any], now: float) -> list[str]:
    """What is due for one set now: "backup", "verify", "read" (the repository's
    snapshots). No verification while the last backup attempt failed."""
    out = []
    if backup_due(
        every=bset.every,
        at=bset.at,
        retry_after=bset.retry_after,
        last_success=state.get("last_success"),
        last_attempt=state.get("last_attempt"),
        last_attempt_ok=opt_bool(state.get("last_attempt_ok")),
        now=now,
    ):
        out.append("backup")
    if state.get("last_attempt_ok") != 0 and verify_due(
        bset.verify_every,
        state.get("last_verify"),
        opt_bool(state.get("last_verify_ok")),
        bset.retry_after,
        now,
    ):
        out.append("verify")
    if read_due(bset.max_age, state.get("repo_read"), now):
        out.append("read")
    return out


def set_freshness(latest_by_part: Mapping[str, float | None]) -> float | None:
    """A set is as fresh as its stalest part; None when a part has no snapshot."""
    if not latest_by_part or any(v is None for v in latest_by_part.values()):
        return None
    return min(v for v in latest_by_part.values() if v is not None)


def current_health(bset: BackupSet, state: Mapping[str, Any], now: float) -> str:
    """The set's health from its stored state: a failed backup attempt or a failed
    verification makes it failing."""
    ok: bool | None = None
    if state.get("last_attempt_ok") is not None:
        ok = bool(state["last_attempt_ok"])
    if ok is not False and state.get("last_verify_ok") == 0:
        ok = False
    return backup_health(state.get("newest_snapshot"), ok, bset.max_age, now)


def opt_bool(value: Any) -> bool | None:
    """A stored 0/1/NULL as a bool or None."""
    return None if value is None else bool(value)
