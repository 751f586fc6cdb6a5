"""The backup area seen from the agent and from `failover status`.

After every round the agent runs `backup_hook`: what is due (backups by schedule, retries
after failures, verifications, reading the repository now and then to learn the newest
snapshot) goes through the hook context's spawn, so that rounds go on meanwhile; changes of
a set's health are notified. `status_section` and `backup_status` only read the store.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from failover.backup.journal import ensure_schema, has_state, load_state, save_state
from failover.backup.restic_parse import redact_repository
from failover.backup.run import backup_sites, refresh_freshness, run_backup, site_config
from failover.backup.schedule import current_health, opt_bool, work_due
from failover.backup.verify import verify_backup
from failover.config.types import format_duration
from failover.errors import FailoverError
from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.config.backup import BackupSet
    from failover.config.load import LoadedConfig
    from failover.hooks import HookContext
    from failover.store import Store

log = get_logger("backup")

_LEVELS = {"fresh": "success", "stale": "warning", "failing": "failure"}


@dataclass(frozen=True)
class BackupEvent:
    site: str
    old: str
    new: str
    ts: float
    message: str
    kind: str = "backup"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def due_work(loaded: LoadedConfig, store: Store, site: str, now: float) -> list[str]:
    """What is due for one site now: "backup", "verify", "read" (the repository's snapshots)."""
    _cfg, bset = site_config(loaded, site)
    return work_due(bset, load_state(store, site), now)


def do_work(loaded: LoadedConfig, store: Store, site: str, work: Sequence[str]) -> None:
    """Run the due work of one site; failures are recorded, never raised."""
    ensure_schema(store)
    try:
        if "backup" in work:
            run_backup(loaded, store, site, check=False)
        if "verify" in work and load_state(store, site).get("last_attempt_ok") != 0:
            verify_backup(loaded, site, store)
        if "read" in work or "backup" in work:
            refresh_freshness(loaded, site, store)
    except FailoverError as exc:
        log.error("backup check failed: %s", exc, extra={"site": site})
        save_state(store, site, repo_read=time.time(), error=str(exc)[:1000])


def health_events(loaded: LoadedConfig, store: Store, now: float) -> list[BackupEvent]:
    """Health changes since the last call (stored), one event each."""
    events = []
    for site in backup_sites(loaded):
        _cfg, bset = site_config(loaded, site)
        state = load_state(store, site)
        new = current_health(bset, state, now)
        old = state.get("health") or "unknown"
        if new != old:
            save_state(store, site, health=new)
            events.append(
                BackupEvent(
                    site=site,
                    old=old,
                    new=new,
                    ts=now,
                    message=_health_message(site, bset, state, new, now),
                )
            )
    return events


def backup_hook(ctx: HookContext) -> None:
    """The agent's stage: due work goes through ctx.spawn (inline under cron, a worker
    thread with its own store in the daemon), health changes to ctx.notifier."""
    from failover.notify import Event

    loaded, store = ctx.loaded, ctx.store
    ensure_schema(store)
    now = time.time()
    for site in backup_sites(loaded):
        work = due_work(loaded, store, site, now)
        if work:
            ctx.spawn(f"backup:{site}", partial(_spawned, loaded, site, work))
    for event in health_events(loaded, store, now):
        ctx.notifier.send(
            Event(
                kind="backup",
                title=f"backup of {event.site}: {event.new}",
                body=event.message,
                site=event.site,
                level=_LEVELS.get(event.new, "info"),
            )
        )


def _spawned(loaded: LoadedConfig, site: str, work: Sequence[str], store: Store) -> None:
    do_work(loaded, store, site, work)


def _health_message(
    site: str, bset: BackupSet, state: dict[str, Any], health: str, now: float
) -> str:
    """The sentence for a set's health: in notifications and in status warnings."""
    newest = state.get("newest_snapshot")
    age = f"{format_duration(round(now - newest))} old" if newest else "no snapshot"
    if health == "failing":
        return f"backup of {site} is failing: {state.get('error') or 'verification failed'}"
    if health == "stale":
        return (
            f"backup of {site} is stale: newest snapshot {age}, more than max_age "
            f"{format_duration(bset.max_age)}"
        )
    if health == "fresh":
        return f"backup of {site} is fresh (newest snapshot {age})"
    return f"backup of {site}: health unknown"


def status_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    """For `failover status`: the site's backup health, and a warning when it is stale or
    failing. Reads the store only."""
    cfg = loaded.config.sites.get(site)
    if cfg is None or cfg.backup is None:
        return {}
    if store is None or not has_state(store):
        return {"backup": {"health": "unknown"}}
    now = time.time()
    row = load_state(store, site)
    health = current_health(cfg.backup, row, now)
    newest = row.get("newest_snapshot")
    out: dict[str, Any] = {
        "backup": {
            "health": health,
            "repository": redact_repository(cfg.backup.repository),
            "newest_snapshot": newest,
            "age": None if newest is None else now - newest,
            "max_age": cfg.backup.max_age,
            "last_attempt": row.get("last_attempt"),
            "last_attempt_ok": opt_bool(row.get("last_attempt_ok")),
            "last_verify": row.get("last_verify"),
            "last_verify_ok": opt_bool(row.get("last_verify_ok")),
            "error": row.get("error"),
        }
    }
    if health in ("stale", "failing"):
        out["warnings"] = [_health_message(site, cfg.backup, row, health, now)]
    return out


def backup_status(
    loaded: LoadedConfig, store: Store, now: float | None = None
) -> list[dict[str, Any]]:
    """Per site with a backup set: health, newest snapshot, last run and verification, for
    `failover status` (reads the store only; no secrets)."""
    now = time.time() if now is None else now
    ensure_schema(store)
    out = []
    for site in backup_sites(loaded):
        _cfg, bset = site_config(loaded, site)
        state = load_state(store, site)
        newest = state.get("newest_snapshot")
        out.append(
            {
                "site": site,
                "health": current_health(bset, state, now),
                "repository": redact_repository(bset.repository),
                "source": bset.source,
                "newest_snapshot": newest,
                "age": None if newest is None else now - newest,
                "max_age": bset.max_age,
                "last_attempt": state.get("last_attempt"),
                "last_attempt_ok": opt_bool(state.get("last_attempt_ok")),
                "last_verify": state.get("last_verify"),
                "last_verify_ok": opt_bool(state.get("last_verify_ok")),
                "error": state.get("error"),
            }
        )
    return out
