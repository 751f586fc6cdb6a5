"""The stages that run after each probe round and add to `status`, registered in one place
so that the order is explicit: backups first (a failover wants the newest snapshot), then
the failover runbook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.agent import HookContext
    from failover.config import LoadedConfig
    from failover.store import Store

_registered = False


def register_all() -> None:
    """Hooks after each round (the agent) and sections of `status`."""
    global _registered
    if _registered:
        return
    from failover import agent

    agent.add_tick_hook(_backup_hook)
    agent.add_tick_hook(_failover_hook)
    agent.add_tick_hook(warm_refresh_hook)
    agent.add_tick_hook(dns_refresh_hook)
    agent.add_tick_hook(heartbeat_hook)
    register_status_sections()
    _registered = True


def register_status_sections() -> None:
    """Only what `status` needs (it must not import the agent and its probes)."""
    from failover import status

    status.add_site_section(_backup_section)
    status.add_site_section(_dns_section)
    status.add_site_section(_runbook_section)


# The stages' modules (restic, DNS SDK glue, the runbook) are imported only when a site
# uses them: `failover status` stays fast for configs without backups or DNS.


def _backup_hook(ctx: HookContext) -> None:
    if any(s.backup is not None for s in ctx.loaded.config.sites.values()):
        from failover.backup.hook import backup_hook

        backup_hook(ctx)


def _failover_hook(ctx: HookContext) -> None:
    from failover import runbook

    runbook.failover_hook(ctx)


def _backup_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    if loaded.config.sites[site].backup is None:
        return {}
    from failover.backup.hook import status_section

    section: dict[str, Any] = status_section(loaded, store, site)
    return section


def _dns_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    if loaded.config.sites[site].dns is None:
        return {}
    from failover import dns

    return dns.dns_status_section(loaded, store, site)


def _runbook_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    if store is None or not store.has_table("runs"):
        return {}
    from failover import runbook

    return runbook.status_section(loaded, store, site)


DNS_REFRESH_EVERY = 3600.0  # seconds between reads of the managed records at the providers


def dns_refresh_hook(ctx: HookContext) -> None:
    """Now and then, read the managed records at their providers, so that `status` shows
    them as they are and warns about TTLs longer than the site's max_ttl."""
    import time

    from failover import dns
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
        for warning in dns.dns_ttl_warnings(loaded, store=store, live=True, sites=sites):
            log.warning("%s", warning)

    ctx.spawn("dns-refresh", work)


def warm_refresh_hook(ctx: HookContext) -> None:
    """A warm standby with `warm_refresh` gets the newest snapshot restored onto it that
    often (so that a failover can skip the restore). Never onto the active endpoint, never
    while a run is open for the site."""
    import time
    from functools import partial

    from failover import runbook

    now = time.time()
    for site_name, site in ctx.loaded.config.sites.items():
        every = site.failover.warm_refresh
        if site.failover.standby != "warm" or every is None or site.backup is None:
            continue
        if runbook.open_run(ctx.store, site_name) is not None:
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
    import time

    from failover.backup.restore import restore_to_endpoint
    from failover.logs import get_logger

    log = get_logger("warm")
    extra = {"site": site_name, "endpoint": endpoint}
    target = loaded.config.sites[site_name].failover.restore_target
    try:
        restore_to_endpoint(loaded, site_name, endpoint, target=target)
    except Exception as exc:
        log.error("refreshing the warm standby failed: %s", exc, extra=extra)
        return
    store.set_meta(key, str(time.time()))
    log.info("warm standby refreshed with the newest snapshot", extra=extra)


def heartbeat_hook(ctx: HookContext) -> None:
    """After a round, at most every `heartbeat.every`: fetch the heartbeat URL (the agent is
    alive and its rounds complete). A failed ping is logged, never raised."""
    import time

    beat = ctx.loaded.config.heartbeat
    if beat is None or ctx.result is None:
        return
    now = time.time()
    if now - float(ctx.store.get_meta("heartbeat") or 0) < beat.every:
        return
    ctx.store.set_meta("heartbeat", str(now))
    url, timeout = beat.url.reveal(), beat.timeout

    def ping(_store: Store) -> None:
        import urllib.error
        import urllib.request

        from failover.logs import get_logger

        try:
            request = urllib.request.Request(url, headers={"User-Agent": "failover-agent"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(1024)
        except (OSError, urllib.error.URLError) as exc:
            # The URL holds a token: name the failure, never the URL.
            get_logger("heartbeat").warning("heartbeat ping failed: %s", exc.__class__.__name__)

    ctx.spawn("heartbeat", ping)
