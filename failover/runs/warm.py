"""Keeping a warm standby current: with `warm_refresh`, the newest snapshot is restored onto
it that often, so that a failover can skip the restore."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

from failover.logs import get_logger
from failover.runs import journal

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.hooks import HookContext
    from failover.store import Store

log = get_logger("warm")


def warm_refresh_hook(ctx: HookContext) -> None:
    """A warm standby with `warm_refresh` gets the newest snapshot restored onto it that
    often (so that a failover can skip the restore). Never onto the active endpoint, never
    while a run is open for the site."""
    now = time.time()
    for site_name, site in ctx.loaded.config.sites.items():
        every = site.failover.warm_refresh
        if site.failover.standby != "warm" or every is None or site.backup is None:
            continue
        if journal.open_run(ctx.store, site_name) is not None:
            continue
        row = ctx.store.active_endpoint(site_name)
        active = row["active"] if row else site.initial_active
        for name, endpoint in site.endpoints.items():
            key = f"warm_refresh:{site_name}:{name}"
            if name == active or endpoint.ssh is None:
                continue
            if now - float(ctx.store.get_meta(key) or 0) < every:
                continue
            ctx.spawn(
                f"warm-{site_name}-{name}", partial(_refresh_warm, ctx.loaded, site_name, name, key)
            )


def _refresh_warm(
    loaded: LoadedConfig, site_name: str, endpoint: str, key: str, store: Store
) -> None:
    from failover.backup.restore import restore_to_endpoint

    extra = {"site": site_name, "endpoint": endpoint}
    target = loaded.config.sites[site_name].failover.restore_target
    try:
        restore_to_endpoint(loaded, site_name, endpoint, target=target)
    except Exception as exc:
        log.error("refreshing the warm standby failed: %s", exc, extra=extra)
        return
    store.set_meta(key, str(time.time()))
    log.info("warm standby refreshed with the newest snapshot", extra=extra)
