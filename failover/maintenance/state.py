"""Maintenance applied to the watch: which sites are in maintenance at a round (pauses from
the state, windows from the config), the periods recorded for the report and uptime, a
pause that ran out removed (and said so), the health streaks restarted when maintenance
ends (down_after counts from the first failure after it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from failover.logs import get_logger
from failover.maintenance import journal
from failover.maintenance.window import Active, Pause, decide

if TYPE_CHECKING:
    from collections.abc import Iterable

    from failover.config.load import LoadedConfig
    from failover.config.models import Config
    from failover.notify import Notifier
    from failover.store import Store
    from failover.watch.health import HealthState

log = get_logger("maintenance")


@lru_cache(maxsize=64)
def zone(name: str | None) -> tzinfo | None:
    """A time zone by its IANA name (validated with the config); None: local time."""
    if name is None:
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def current(config: Config, store: Store, site: str, now: float) -> Active | None:
    """The maintenance `site` is in at `now` (reading only)."""
    windows = config.sites[site].maintenance if site in config.sites else []
    return decide(now, windows, journal.get_pause(store, site), zone)


def track(
    config: Config, store: Store, notifier: Notifier, sites: Iterable[str], ts: float
) -> tuple[dict[str, Active], set[str]]:
    """At a round: the sites in maintenance (recorded as periods) and the sites whose
    maintenance just ended. A pause that ran out is removed, logged and notified; the
    notifier is told which sites are quiet."""
    active: dict[str, Active] = {}
    ended: set[str] = set()
    for site in sites:
        pause = journal.get_pause(store, site)
        if pause is not None and pause.expired(ts):
            journal.delete_pause(store, site)
            _said_over(notifier, site, f"the pause ran out ({_why(pause)}): watching again")
        now_in = current(config, store, site, ts)
        period = journal.open_period(store, site)
        if now_in is not None:
            active[site] = now_in
            notifier.quiet[site] = f"{site} is in maintenance ({now_in.summary})"
            if period is None or (period[1], period[2]) != (now_in.kind, now_in.reason):
                journal.start_period(store, site, now_in.kind, now_in.reason, ts)
                log.warning(
                    "in maintenance (%s): probed and recorded; nothing is declared down, "
                    "switched or notified",
                    now_in.summary,
                    extra={"site": site},
                )
            else:
                journal.extend_period(store, period[0], ts)
            continue
        notifier.quiet.pop(site, None)
        if period is not None:
            journal.extend_period(store, period[0], ts, close=True)
            ended.add(site)
            if period[1] == "window":
                _said_over(notifier, site, "the maintenance window closed: watching again")
            elif pause is None or not pause.expired(ts):
                log.info("maintenance is over: watching again", extra={"site": site})
    return active, ended


def _why(pause: Pause) -> str:
    return pause.reason or "no reason given"


def _said_over(notifier: Notifier, site: str, message: str) -> None:
    from failover.notify import Event

    log.warning(message, extra={"site": site})
    notifier.quiet.pop(site, None)
    notifier.send(Event("maintenance", f"[{site}] {message}", message, site=site, level="info"))


def fresh_streak(state: HealthState) -> HealthState:
    """The health an endpoint resumes with after maintenance: its status kept, its
    streak and window of failures forgotten, so that it is judged on what follows."""
    return replace(state, streak_ok=None, streak_start=None, streak_count=0, failures=())


def status_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    """`status`: the maintenance the site is in now, and its windows."""
    import time

    now = time.time()
    cfg = loaded.config.sites[site]
    if store is None:
        active = decide(now, cfg.maintenance, None, zone)
    else:
        active = current(loaded.config, store, site, now)
    if active is None and not cfg.maintenance:
        return {}
    from failover.maintenance.window import describe_window

    windows = [describe_window(w) for w in cfg.maintenance]
    entry: dict[str, Any] = {
        "active": None if active is None else active.to_dict(now),
        "windows": windows,
    }
    if active is not None:
        entry["summary"] = "IN MAINTENANCE: " + active.summary
    else:
        entry["summary"] = "windows: " + "; ".join(windows)
    out: dict[str, Any] = {"maintenance": entry}
    if active is not None:
        out["warnings"] = [
            f"in maintenance ({active.summary}): probed, but nothing is declared down, "
            "switched or notified"
        ]
    return out
