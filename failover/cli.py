"""The command line. Commands are thin: load the config, call the core, render.

`run()` owns errors and exit codes: a FailoverError prints one line (several for a config
with several problems) and exits with its code; anything else is a bug, shown as a
one-line message unless --debug asks for the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from failover.errors import ExitCode, FailoverError, UsageError

app = typer.Typer(
    name="failover",
    help="Watch a hosted server from outside, keep off-provider backups, and move the site "
    "to a standby when the provider falls over.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Globals:
    config_path: str | None = None
    debug: bool = False
    log_format: str = "text"


G = Globals()


@app.callback()
def _global_options(
    config: str | None = typer.Option(
        None, "--config", "-c", envvar="FAILOVER_CONFIG",
        help="Config file [default: ./failover.yaml, then /etc/failover/failover.yaml].",
    ),
    debug: bool = typer.Option(False, "--debug", help="Debug logs and tracebacks."),
    log_format: str = typer.Option("text", "--log-format", help="Log lines: text or json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors in the log."),
) -> None:
    from failover.logs import setup_logging

    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format: expected text or json, got {log_format!r}")
    G.config_path, G.debug, G.log_format = config, debug, log_format
    setup_logging(log_format, logging.WARNING if quiet else logging.INFO, debug)


def load() -> Any:
    """Load the config named by the global options, logging its warnings."""
    from failover.config import load_config
    from failover.logs import get_logger

    loaded = load_config(G.config_path)
    log = get_logger("config")
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- commands ---------------------------------------------------------------------------


@app.command()
def validate(
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a config file: every problem at once, each with file, line and key."""
    loaded = load()
    sites = loaded.config.sites
    if json_out:
        emit_json({"config": str(loaded.path), "valid": True, "sites": list(sites),
                   "warnings": loaded.warnings})
        return
    endpoints = sum(len(s.endpoints) for s in sites.values())
    typer.echo(f"{loaded.path}: valid ({len(sites)} site(s), {endpoints} endpoint(s))")
    if not loaded.config.canaries:
        typer.echo("note: no canaries configured; an outage of this machine's own network "
                   "would look like the sites being down", err=True)


@app.command()
def init(
    path: str = typer.Argument("failover.yaml", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starting config (mode 0600) to edit."""
    from failover.sample import write_sample

    target = Path(path)
    write_sample(target, force=force)
    typer.echo(f"wrote {target} (mode 0600): edit it, then run `failover -c {target} validate`")


@app.command()
def check(
    json_out: bool = typer.Option(False, "--json", help="Print the round's results as JSON."),
    strict: bool = typer.Option(
        False, "--strict", help="Exit 5 when an active endpoint is down (for monitoring)."
    ),
) -> None:
    """Probe every endpoint once (for cron), record the evidence, notify on changes."""
    from failover.agent import tick
    from failover.notify import Notifier
    from failover.store import Store

    loaded = load()
    with Store.open(loaded.state_path, lock=True) as store:
        notifier = Notifier(loaded.config.notify)
        result = tick(loaded, store, notifier)
        notifier.flush(30)
        if json_out:
            emit_json(_round_json(result))
        if strict:
            for site_name in loaded.config.sites:
                row = store.active_endpoint(site_name)
                active = row["active"] if row else None
                for o in result.outcomes:
                    if o.site == site_name and o.endpoint == active and o.after.is_down:
                        raise typer.Exit(int(ExitCode.DEGRADED))


def _round_json(result: Any) -> dict[str, Any]:
    return {
        "ts": result.ts,
        "duration": result.duration,
        "network_ok": result.network_ok,
        "canaries": [_probe_json(r) for r in result.canaries],
        "endpoints": [
            {"site": o.site, "endpoint": o.endpoint, "ok": o.ok, "observation": o.observation,
             "health": o.after.status,
             "change": None if o.change is None else {
                 "from": o.change.from_status, "to": o.change.to_status,
                 "reason": o.change.reason},
             "checks": [_probe_json(r) for r in o.results]}
            for o in result.outcomes
        ],
    }


def _probe_json(r: Any) -> dict[str, Any]:
    return {"check": r.check, "ok": r.ok, "latency_ms": r.latency_ms, "detail": r.detail,
            "warning": r.warning}


@app.command()
def agent(
    max_rounds: int | None = typer.Option(
        None, "--max-rounds", hidden=True, help="Stop after this many rounds (tests)."
    ),
) -> None:
    """Run as a daemon: probe on schedule; SIGTERM/SIGINT stop, SIGHUP reloads the config."""
    from failover.agent import Agent
    from failover.config import load_config
    from failover.notify import Notifier
    from failover.store import Store

    loaded = load()
    path = loaded.path

    def reload() -> Any:
        new = load_config(path)
        if new.state_path != loaded.state_path:
            raise UsageError("the state path cannot change on reload; restart the agent")
        return new

    with Store.open(loaded.state_path, lock=True) as store:
        daemon = Agent(loaded, store, Notifier(loaded.config.notify), reload)
        daemon.install_signal_handlers()
        raise typer.Exit(daemon.run(max_rounds=max_rounds))


@app.command()
def status(
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Per site: the active endpoint, each endpoint's health and since when, the last probes."""
    from failover import status as status_mod
    from failover.store import Store

    loaded = load()
    store = Store.open(loaded.state_path, readonly=True) if loaded.state_path.exists() else None
    try:
        data = status_mod.gather(loaded, store)
    finally:
        if store is not None:
            store.close()
    if json_out:
        emit_json(data)
    else:
        typer.echo(status_mod.render_text(data))


from failover.cli_dns import dns_app  # noqa: E402 - after the commands: it imports `load`

app.add_typer(dns_app, name="dns")


# --- entry point --------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        rc = app(args=argv, prog_name="failover", standalone_mode=False)
        if isinstance(rc, int):  # click returns typer.Exit's code when not standalone
            return rc
    except FailoverError as exc:
        _print_error(exc, debug)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except SystemExit as exc:  # typer.Exit raised inside a command
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except Exception as exc:  # click's usage errors and real bugs
        click_exc = _click_exceptions()
        if isinstance(exc, click_exc.Exit):
            return int(exc.exit_code)
        if isinstance(exc, click_exc.Abort):
            typer.echo("aborted", err=True)
            return int(ExitCode.FAILED)
        if isinstance(exc, click_exc.ClickException):
            exc.show()
            return int(ExitCode.USAGE)
        if debug:
            raise
        typer.echo(f"failover: internal error: {exc.__class__.__name__}: {exc} "
                   "(run with --debug for the traceback)", err=True)
        return int(ExitCode.FAILED)
    return 0


def _click_exceptions() -> Any:
    # typer may vendor click (typer._click): reach its classes through typer's own exports.
    import types

    base = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return types.SimpleNamespace(Exit=typer.Exit, Abort=typer.Abort, ClickException=base)


def _print_error(exc: FailoverError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    lines = str(exc).splitlines() or [exc.__class__.__name__]
    for line in lines:
        typer.echo(f"failover: {line}" if len(lines) == 1 else line, err=True)


def _path_arg(value: str | None) -> Path | None:
    return Path(value) if value else None
