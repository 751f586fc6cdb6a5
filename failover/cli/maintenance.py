"""`failover pause SITE [--for DURATION] [--reason TEXT]` and `failover resume SITE`: quiet on
purpose. The pause lives in the state; the agent (or the next cron round) picks it up."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import typer

from failover.cli.context import duration_option, echo, emit_json, load, open_store
from failover.errors import UsageError


def pause(
    site: str = typer.Argument(..., help="The site to pause."),
    for_: float | None = typer.Option(
        None,
        "--for",
        metavar="DURATION",
        parser=duration_option("--for"),
        help="How long (30m, 2h, 1d); until `failover resume` when unset.",
    ),
    reason: str | None = typer.Option(
        None, "--reason", metavar="TEXT", help="Why: shown in status, logs and the report."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the pause as JSON."),
) -> None:
    """Pause a site for maintenance: it is still probed and recorded, but nothing is
    declared down, failed over or notified, and the time does not count in uptime. A pause
    with --for ends by itself (and says so).

    Examples:
      failover pause shop --for 2h --reason "kernel update"
      failover pause shop                      # until `failover resume shop`
    """
    from failover.maintenance import journal
    from failover.maintenance.window import Active, Pause

    loaded = load()
    _known(loaded.config.sites, site)
    if for_ is not None and for_ <= 0:
        raise UsageError("--for: a duration more than 0, such as 30m or 2h")
    now = time.time()
    pause_ = Pause(now, None if for_ is None else now + for_, reason)
    with open_store(loaded) as store:
        replaced = journal.get_pause(store, site)
        journal.set_pause(store, site, pause_)
    active = Active("pause", now, pause_.until, reason)
    if json_out:
        emit_json(
            {
                "site": site,
                "paused": True,
                "replaced": replaced is not None,
                "maintenance": active.to_dict(now),
            }
        )
        return
    echo(f"{site}: {active.summary}" + (" (replaces the previous pause)" if replaced else ""))
    echo("probing goes on; nothing is declared down, failed over or notified meanwhile")


def resume(
    site: str = typer.Argument(..., help="The site to resume."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """End a pause: the site is watched again from the next round on (its checks must
    fail for down_after again before it is declared down).

    Examples:
      failover resume shop
    """
    from failover.maintenance import journal, state

    loaded = load()
    _known(loaded.config.sites, site)
    with open_store(loaded) as store:
        removed = journal.delete_pause(store, site)
        still = state.current(loaded.config, store, site, time.time())
    if json_out:
        emit_json(
            {
                "site": site,
                "resumed": removed,
                "maintenance": None if still is None else still.to_dict(time.time()),
            }
        )
        return
    if removed:
        echo(f"{site}: resumed; watched again from the next round")
    else:
        echo(f"{site}: not paused: nothing to do")
    if still is not None:
        echo(
            f"{site}: still in maintenance: {still.summary} (edit `maintenance:` in the config "
            "to change a window)"
        )


def _known(sites: Mapping[str, Any], site: str) -> None:
    if site not in sites:
        from failover.config.wording import did_you_mean

        raise UsageError(f"no site {site!r} in the config{did_you_mean(site, list(sites))}")
