"""`failover init | validate | check | agent | status`: the config, the watch, and what it saw."""

from __future__ import annotations

from pathlib import Path

import typer

from failover.cli.context import echo, emit_json, load, open_store
from failover.errors import ExitCode, UsageError


def validate(
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a config file: every problem at once, each with file, line and key."""
    loaded = load()
    sites = loaded.config.sites
    if json_out:
        emit_json(
            {
                "config": str(loaded.path),
                "valid": True,
                "sites": list(sites),
                "warnings": loaded.warnings,
            }
        )
        return
    endpoints = sum(len(s.endpoints) for s in sites.values())
    echo(f"{loaded.path}: valid ({len(sites)} site(s), {endpoints} endpoint(s))")
    if not loaded.config.canaries:
        echo(
            "note: no canaries configured; an outage of this machine's own network "
            "would look like the sites being down",
            err=True,
        )


def init(
    path: str = typer.Argument("failover.yaml", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starting config (mode 0600) to edit."""
    from failover.sample import write_sample

    target = Path(path)
    write_sample(target, force=force)
    echo(f"wrote {target} (mode 0600): edit it, then run `failover -c {target} validate`")


def check(
    json_out: bool = typer.Option(False, "--json", help="Print the round's results as JSON."),
    strict: bool = typer.Option(
        False, "--strict", help="Exit 5 when an active endpoint is down (for monitoring)."
    ),
) -> None:
    """Probe every endpoint once (for cron), record the evidence, notify on changes."""
    from failover.cli.stages import watch_stages
    from failover.notify import Notifier
    from failover.watch.daemon import tick

    loaded = load()
    with open_store(loaded, lock=True) as store:
        hooks, notifier = watch_stages(loaded, Notifier(loaded.config.notify), store)
        result = tick(loaded, store, notifier, hooks)
        notifier.flush(30)
        active = {
            name: store.active_or(name, site.initial_active)
            for name, site in loaded.config.sites.items()
        }
    if json_out:
        emit_json(result.to_dict())
    if strict and result.active_down(active):
        raise typer.Exit(int(ExitCode.DEGRADED))


def agent(
    max_rounds: int | None = typer.Option(
        None, "--max-rounds", hidden=True, help="Stop after this many rounds (tests)."
    ),
) -> None:
    """Run as a daemon: probe on schedule; SIGTERM/SIGINT stop, SIGHUP reloads the config."""
    from failover.cli.context import G
    from failover.cli.stages import watch_stages
    from failover.config.load import LoadedConfig, load_config
    from failover.notify import Notifier
    from failover.watch.daemon import Agent

    loaded = load()
    path = loaded.path

    def reload() -> LoadedConfig:
        new = load_config(path, watcher=G.watcher)
        if new.state_path != loaded.state_path:
            raise UsageError("the state path cannot change on reload; restart the agent")
        return new

    with open_store(loaded, lock=True) as store:
        hooks, notifier = watch_stages(loaded, Notifier(loaded.config.notify), store, starting=True)
        daemon = Agent(loaded, store, notifier, reload, hooks)
        daemon.install_signal_handlers()
        raise typer.Exit(daemon.run(max_rounds=max_rounds))


def status(
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Per site: the active endpoint, each endpoint's health and since when, the last probes."""
    from failover.cli.stages import status_sections
    from failover.show import status as status_mod

    loaded = load()
    store = open_store(loaded, readonly=True) if loaded.state_path.exists() else None
    try:
        data = status_mod.gather(loaded, store, status_sections())
    finally:
        if store is not None:
            store.close()
    if json_out:
        emit_json(data)
    else:
        echo(status_mod.render_text(data))
