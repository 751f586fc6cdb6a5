"""The agent's DNS hook (registered in failover/stages.py): now and then, in the background,
read the managed records at their providers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.hooks import HookContext
    from failover.store import Store

DNS_REFRESH_EVERY = 3600.0  # seconds between reads of the managed records at the providers
# sooner when the reading predates the active endpoint (another watcher switched DNS)
DNS_STALE_REFRESH_EVERY = 30.0


def dns_refresh_hook(ctx: HookContext) -> None:
    """Now and then, read the managed records at their providers, so that `status` shows
    them as they are and warns about TTLs longer than the site's max_ttl."""
    import time

    from failover.dns.show import dns_ttl_warnings
    from failover.logs import get_logger

    sites = [n for n, s in ctx.loaded.config.sites.items() if s.dns is not None]
    if not sites:
        return
    now = time.time()
    if not _due(ctx, sites, now - float(ctx.store.get_meta("dns_refreshed") or 0)):
        return
    ctx.store.set_meta("dns_refreshed", str(now))
    loaded, log = ctx.loaded, get_logger("dns")

    def work(store: Store) -> None:
        for warning in dns_ttl_warnings(loaded, store=store, live=True, sites=sites):
            log.warning("%s", warning)

    ctx.spawn("dns-refresh", work)


def _due(ctx: HookContext, sites: list[str], age: float) -> bool:
    """Read the records again: hourly, or after 30 s when the reading may be stale."""
    if age >= DNS_REFRESH_EVERY:
        return True
    return age >= DNS_STALE_REFRESH_EVERY and _follows_leader(ctx) and _stale(ctx, sites)


def _follows_leader(ctx: HookContext) -> bool:
    """Only another watcher's switch leaves this one's reading stale: without coordination
    the agent records what it switched (and pays nothing here). A voter-only watcher holds
    no DNS credentials: it reads on the hourly schedule only (each read fails with one
    warning)."""
    coordination, me = ctx.loaded.config.coordination, ctx.loaded.watcher
    if coordination is None or me is None or me not in coordination.watchers:
        return False
    return coordination.watchers[me].can_act


def _stale(ctx: HookContext, sites: list[str]) -> bool:
    from failover.dns.show import records_predate_active

    config = ctx.loaded.config
    return any(records_predate_active(ctx.store, config.sites[n], n) is not None for n in sites)
