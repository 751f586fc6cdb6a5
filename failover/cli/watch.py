"""`failover init | validate | check | agent | status`: the config, the watch, and what it saw."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from failover.cli.context import G, echo, emit_json, load, log_config_warnings, open_store
from failover.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig


def validate(
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON (errors too)."),
) -> None:
    """Check a config file: every problem at once, each with file, line and key; then what
    would make a valid config useless at 3 a.m. (no notification target, auto_failover
    without dns, a cold standby without backups, missing SSH keys, sample addresses).

    Examples:
      failover validate -c /etc/failover/failover.yaml
      failover validate --json | jq '.errors, .warnings'
    """
    from failover.errors import ConfigError

    try:
        loaded = load(log_warnings=False)
    except ConfigError as exc:
        if not json_out:
            raise
        emit_json(
            {
                "config": G.config_path or os.environ.get("FAILOVER_CONFIG"),
                "valid": False,
                "errors": [_problem_dict(p) for p in exc.problems],
                "warnings": [],
            }
        )
        raise typer.Exit(int(ExitCode.USAGE)) from None
    sites = loaded.config.sites
    notes = [] if loaded.config.canaries else [NO_CANARIES]
    warnings = [*loaded.warnings, *loaded.advice, *_drill_warnings(loaded)]
    if json_out:
        emit_json(
            {
                "config": str(loaded.path),
                "valid": True,
                "errors": [],
                "sites": list(sites),
                "warnings": [_problem_dict(w) for w in warnings],
                "notes": notes,
            }
        )
        return
    endpoints = sum(len(s.endpoints) for s in sites.values())
    echo(f"{loaded.path}: valid ({len(sites)} site(s), {endpoints} endpoint(s))")
    for warning in warnings:
        echo(f"warning: {warning}", err=True)
    for note in notes:
        echo(f"note: {note}", err=True)


NO_CANARIES = (
    "no canaries configured; an outage of this machine's own network would look like the "
    "sites being down"
)
_PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<key>[^:]+?): (?P<message>.*)$")


def _problem_dict(text: str) -> dict[str, Any]:
    """`FILE:LINE: key.path: message` as fields (and the line as it was printed)."""
    m = _PROBLEM.match(text)
    if m is None:
        return {"text": text, "file": None, "line": None, "key": None, "message": text}
    return {
        "text": text,
        "file": m["file"],
        "line": int(m["line"]),
        "key": m["key"],
        "message": m["message"],
    }


def schema() -> None:
    """Print the JSON schema of the config file (every key, its type and meaning), as
    shipped with this version; point your editor's YAML language server at it.

    Examples:
      failover schema > /etc/failover/failover.schema.json
      # then, first line of failover.yaml: # yaml-language-server: $schema=failover.schema.json
    """
    from importlib import resources

    text = resources.files("failover.config").joinpath("failover.schema.json").read_text("utf-8")
    sys.stdout.write(text)


def _drill_warnings(loaded: LoadedConfig) -> list[str]:
    """Sites with a drill schedule whose last passed drill is older than 2 x every."""
    if not any(s.failover.drill and s.failover.drill.every for s in loaded.config.sites.values()):
        return []
    from failover.cli.context import read_store
    from failover.runs.drill import overdue_warnings

    store = read_store(loaded)
    try:
        return overdue_warnings(loaded, store)
    finally:
        if store is not None:
            store.close()


def init(
    path: str = typer.Argument("failover.yaml", metavar="PATH", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starting config (mode 0600) to edit.

    Examples:
      failover init /etc/failover/failover.yaml
    """
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
    """Probe every endpoint once (for cron), record the evidence, notify on changes, then
    run what is due (backups, failover). Config warnings are logged once per change of
    the config, not every round.

    Examples:
      * * * * * root failover --quiet check        # /etc/cron.d/failover
      failover check --json --strict                # for a monitoring system: exit 5 if down
    """
    from failover.cli.stages import watch_stages
    from failover.errors import StateLocked
    from failover.logs import get_logger
    from failover.notify import Notifier
    from failover.watch import heartbeat
    from failover.watch.daemon import tick
    from failover.watch.worker import Deferred, start_detached

    loaded = load(log_warnings=False)
    try:
        store = open_store(loaded, lock=True, role="check")
    except StateLocked as exc:
        if exc.holder_role != "check":
            raise
        # Cron started this one while the previous minute's round is still probing: that
        # round does the work. Not an error, and quiet under --quiet (no cron mail).
        get_logger("agent").info(
            "skipped: the previous `failover check` (pid %s) is still in its round",
            exc.holder_pid,
        )
        if json_out:
            emit_json({"skipped": True, "reason": "another check is in its round",
                       "holder_pid": exc.holder_pid})  # fmt: skip
        return
    base = Notifier(loaded.config.notify, loaded.config.sites)
    deferred = Deferred()
    with store:
        log_config_warnings(loaded, store)
        hooks, notifier = watch_stages(loaded, base, store)  # with coordination: the group's
        result = tick(loaded, store, notifier, hooks, spawn=deferred)
        active = {
            name: store.active_or(name, site.initial_active)
            for name, site in loaded.config.sites.items()
        }
    # The state lock is released: long work runs detached while later rounds go on; a
    # heartbeat still on its way is waited for here.
    start_detached(deferred.detached, loaded.state_path, notifier)
    deferred.run_inline(loaded.state_path)
    heartbeat.finish(loaded.config)
    notifier.flush(notifier.bound + 5)
    if json_out:
        emit_json(result.to_dict())
    if strict and result.active_down(active):
        raise typer.Exit(int(ExitCode.DEGRADED))


def agent(
    max_rounds: int | None = typer.Option(
        None, "--max-rounds", hidden=True, help="Stop after this many rounds (tests)."
    ),
) -> None:
    """Run as a daemon: probe on schedule; SIGTERM/SIGINT stop, SIGHUP reloads the config.
    Under systemd (Type=notify) it says READY when the first round is done and pings the
    watchdog from its round loop.

    Examples:
      systemctl enable --now failover-agent       # examples/systemd/failover-agent.service
      failover agent --log-format json
    """
    from failover.cli.context import G
    from failover.cli.stages import watch_stages
    from failover.config.load import load_config
    from failover.notify import Notifier
    from failover.show.metrics import serve_metrics
    from failover.watch.daemon import Agent

    loaded = load(log_warnings=False)
    path = loaded.path

    with open_store(loaded, lock=True, role="agent") as store, serve_metrics(loaded):

        def reload() -> LoadedConfig:
            new = load_config(path, watcher=G.watcher)
            if new.state_path != loaded.state_path:
                raise UsageError("the state path cannot change on reload; restart the agent")
            log_config_warnings(new, store)
            return new

        log_config_warnings(loaded, store)
        hooks, notifier = watch_stages(
            loaded, Notifier(loaded.config.notify, loaded.config.sites), store, starting=True
        )
        daemon = Agent(loaded, store, notifier, reload, hooks)
        daemon.install_signal_handlers()
        raise typer.Exit(daemon.run(max_rounds=max_rounds))


def status(
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Per site: the active endpoint, each endpoint's health and since when, the last
    probes, maintenance, backups, DNS, open runs and warnings. Reads the state only.

    Examples:
      failover status
      failover status --json | jq '.sites.shop.active'
    """
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
