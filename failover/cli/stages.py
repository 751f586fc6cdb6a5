"""The CLI assembles what runs after each probe round and what `status` shows, in one place
so that the order is explicit: backups first (a failover wants the newest snapshot), then
the runs (failover, fencing), the drills, the warm standby refresh, the DNS refresh, the
heartbeat, the metrics and the status page.

Each area's module is imported only when a site uses it, so that `failover check` and
`failover status` stay fast for configs without backups or DNS.

With a `coordination:` section (several watchers), `watch_stages()` puts the group first:
after each round this watcher publishes its verdicts and reads the group's; only the
leader runs the backups, the runs (on the group's verdicts; also as soon as the group's
verdict changes between rounds, see coordination/session.py) and the warm refresh; a
voter-only watcher (can_act: false) runs none of what needs credentials; only the leader
notifies. Without the section none of that is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.hooks import Hook, HookContext
    from failover.notify import Notifier
    from failover.show.status import SiteSection
    from failover.store import Store


def round_hooks() -> list[Hook]:
    """What the agent and `check` run after each round, in order."""
    return [
        _backup_hook,
        _runs_hook,
        _drill_hook,
        _warm_refresh_hook,
        _dns_refresh_hook,
        _heartbeat_hook,
        _reminder_hook,
        _metrics_hook,
        _status_page_hook,
    ]


def watch_stages(
    loaded: LoadedConfig,
    notifier: Notifier,
    store: Store | None = None,
    *,
    starting: bool = False,
) -> tuple[list[Hook], Notifier]:
    """The hooks and the notifier for `check` and `agent`: round_hooks() alone, or, with a
    coordination section, the group's (`starting`: the agent proves the engine first)."""
    if loaded.config.coordination is None:
        return round_hooks(), notifier
    from failover.coordination.session import LeaderNotifier, start_session

    session = start_session(loaded, store, starting=starting)

    def coordination_hook(ctx: HookContext) -> None:
        session.round(ctx)

    def leader_only(hook: Hook) -> Hook:
        def gated(ctx: HookContext) -> None:
            if session.may_act():
                hook(ctx)

        gated.__name__ = getattr(hook, "__name__", "hook")
        return gated

    def group_runs_hook(ctx: HookContext) -> None:  # after a round, or following the group
        from failover.runs.auto import failover_hook

        with session.deciding():
            failover_hook(ctx, group=session)

    hooks: list[Hook] = [coordination_hook]
    if session.can_act:  # a voter-only watcher holds no credentials for these
        session.on_change = group_runs_hook
        hooks += [
            leader_only(_backup_hook),
            group_runs_hook,
            leader_only(_drill_hook),
            leader_only(_warm_refresh_hook),
            _dns_refresh_hook,
        ]
    # every watcher pings its own heartbeat and serves its own metrics; the leader alone
    # reminds (through the leader's notifier) and publishes the status page
    hooks += [_heartbeat_hook, _reminder_hook, _metrics_hook, leader_only(_status_page_hook)]
    return hooks, LeaderNotifier(notifier, session)


def status_sections() -> list[SiteSection]:
    """The per-site sections of `failover status` beyond health: backups, DNS, runs."""
    return [
        _maintenance_section,
        _backup_section,
        _dns_section,
        _runs_section,
        _drill_section,
        _coordination_section,
    ]


def _backup_hook(ctx: HookContext) -> None:
    if any(s.backup is not None for s in ctx.loaded.config.sites.values()):
        from failover.backup.hook import backup_hook

        backup_hook(ctx)


def _runs_hook(ctx: HookContext) -> None:
    from failover.runs.auto import failover_hook

    failover_hook(ctx)


def _drill_hook(ctx: HookContext) -> None:
    # Always: a drill started by hand and interrupted is resumed even without a schedule.
    from failover.runs.drill import drill_hook

    drill_hook(ctx)


def _warm_refresh_hook(ctx: HookContext) -> None:
    if any(s.failover.warm_refresh for s in ctx.loaded.config.sites.values()):
        from failover.runs.warm import warm_refresh_hook

        warm_refresh_hook(ctx)


def _dns_refresh_hook(ctx: HookContext) -> None:
    if any(s.dns is not None for s in ctx.loaded.config.sites.values()):
        from failover.dns.hook import dns_refresh_hook

        dns_refresh_hook(ctx)


def _heartbeat_hook(ctx: HookContext) -> None:
    if ctx.loaded.config.heartbeat is not None:
        from failover.watch.heartbeat import heartbeat_hook

        heartbeat_hook(ctx)


def _metrics_hook(ctx: HookContext) -> None:
    if ctx.loaded.config.metrics is not None:
        from failover.show.metrics import metrics_hook

        metrics_hook(ctx)


def _status_page_hook(ctx: HookContext) -> None:
    if ctx.loaded.config.status_page is not None:
        from failover.show.status_page import status_page_hook

        status_page_hook(ctx)


def _reminder_hook(ctx: HookContext) -> None:
    from failover.watch import reminders

    if reminders.wanted(ctx):
        reminders.reminder_hook(ctx)


def _backup_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    if loaded.config.sites[site].backup is None:
        return {}
    from failover.backup.hook import status_section

    section: dict[str, Any] = status_section(loaded, store, site)
    return section


def _dns_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    if loaded.config.sites[site].dns is None:
        return {}
    from failover.dns import show as dns

    return dns.dns_status_section(loaded, store, site)


def _maintenance_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    from failover.maintenance.state import status_section

    return status_section(loaded, store, site)


def _runs_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    from failover.runs.show import status_section

    return status_section(loaded, store, site)


def _drill_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    from failover.runs.drill import status_section

    return status_section(loaded, store, site)


def _coordination_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    if loaded.config.coordination is None:
        return {}
    from failover.coordination.show import status_section as coordination_section

    return coordination_section(loaded, store, site)
