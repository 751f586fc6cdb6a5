"""The stages that run after each probe round and add to `status`, registered in one place
so that the order is explicit: backups first (a failover wants the newest snapshot), then
the failover runbook."""

from __future__ import annotations

_registered = False


def register_all() -> None:
    global _registered
    if _registered:
        return
    from failover import agent, dns, runbook, status

    try:
        from failover import backup
    except ImportError:  # pragma: no cover
        backup = None  # type: ignore[assignment]
    if backup is not None and hasattr(backup, "backup_hook"):
        agent.add_tick_hook(backup.backup_hook)
        status.add_site_section(backup.status_section)
    agent.add_tick_hook(runbook.failover_hook)
    status.add_site_section(dns.dns_status_section)
    status.add_site_section(runbook.status_section)
    _registered = True
