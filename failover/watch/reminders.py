"""Reminders of an ongoing outage: while an endpoint stays down, each notification target
with `remind_every` hears of it again that often ("still DOWN for 2h 05m"), until it
recovers. Not during maintenance, not for an old primary fenced on purpose. The time of
the last reminder per endpoint and target is kept in the state, so cron rounds and the
daemon remind alike."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from failover.humanize import duration
from failover.logs import get_logger
from failover.notify import Event

if TYPE_CHECKING:
    from failover.hooks import EndpointOutcome, HookContext

log = get_logger("notify")


def reminder_due(
    last: float | None, outage_start: float | None, every: float, now: float
) -> Literal["start", "send", "wait"]:
    """start: a new outage (count from now: the down notice has just gone out); send: a
    reminder is due; wait: not yet."""
    if last is None or last < (outage_start or 0.0):
        return "start"
    return "send" if now - last >= every else "wait"


def wanted(ctx: HookContext) -> bool:
    config = ctx.loaded.config
    targets = [*config.notify]
    for site in config.sites.values():
        if site.notify is not None:
            targets += site.notify.targets
    return any(t.remind_every for t in targets)


def reminder_hook(ctx: HookContext) -> None:
    result = ctx.result
    if result is None or not result.network_ok:
        return
    for outcome in result.outcomes:
        if not outcome.after.is_down or outcome.site in result.maintenance:
            continue
        if ctx.store.get_meta(f"fenced_endpoint:{outcome.site}:{outcome.endpoint}") is not None:
            continue
        _remind(ctx, outcome, result.ts)


def _remind(ctx: HookContext, o: EndpointOutcome, now: float) -> None:
    due: list[int] = []
    for i, target in enumerate(ctx.notifier.targets_for(o.site)):
        if not target.remind_every or (target.events is not None and "down" not in target.events):
            continue
        key = f"remind:{o.site}:{o.endpoint}:{i}"
        raw = ctx.store.get_meta(key)
        verdict = reminder_due(
            None if raw is None else float(raw), o.after.outage_start, target.remind_every, now
        )
        if verdict == "wait":
            continue
        ctx.store.set_meta(key, str(now))
        if verdict == "send":
            due.append(i)
    if not due:
        return
    down_for = duration(now - (o.after.outage_start or now))
    address = ctx.loaded.config.sites[o.site].endpoints[o.endpoint].address
    ctx.notifier.send(
        Event(
            "down",
            f"[{o.site}] {o.endpoint} is still DOWN ({down_for})",
            f"{o.endpoint} ({address}) of {o.site} has been down for {down_for} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(o.after.outage_start or now))}: "
            f"{o.failure_detail()}",
            site=o.site,
            endpoint=o.endpoint,
            level="failure",
            only=tuple(due),
        )
    )
    log.info(
        "reminded %d target(s): still down for %s",
        len(due),
        down_for,
        extra={"site": o.site, "endpoint": o.endpoint},
    )
