"""The agent's DNS hook (registered in failover/stages.py): now and then, in the background,
read the managed records at their providers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.hooks import HookContext
    from failover.store import Store

DNS_REFRESH_EVERY = 3600.0  # seconds between reads of the managed records at the providers


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
    last = float(ctx.store.get_meta("dns_refreshed") or 0)
    if now - last < DNS_REFRESH_EVERY:
        return
    ctx.store.set_meta("dns_refreshed", str(now))
    loaded, log = ctx.loaded, get_logger("dns")

    def work(store: Store) -> None:
        for warning in dns_ttl_warnings(loaded, store=store, live=True, sites=sites):
            log.warning("%s", warning)

    ctx.spawn("dns-refresh", work)
