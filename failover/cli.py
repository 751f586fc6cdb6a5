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

from failover.errors import ExitCode, FailoverError, UnsafePlan, UsageError

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
        None,
        "--config",
        "-c",
        envvar="FAILOVER_CONFIG",
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
    typer.echo(f"{loaded.path}: valid ({len(sites)} site(s), {endpoints} endpoint(s))")
    if not loaded.config.canaries:
        typer.echo(
            "note: no canaries configured; an outage of this machine's own network "
            "would look like the sites being down",
            err=True,
        )


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
            {
                "site": o.site,
                "endpoint": o.endpoint,
                "ok": o.ok,
                "observation": o.observation,
                "health": o.after.status,
                "change": None
                if o.change is None
                else {
                    "from": o.change.from_status,
                    "to": o.change.to_status,
                    "reason": o.change.reason,
                },
                "checks": [_probe_json(r) for r in o.results],
            }
            for o in result.outcomes
        ],
    }


def _probe_json(r: Any) -> dict[str, Any]:
    return {
        "check": r.check,
        "ok": r.ok,
        "latency_ms": r.latency_ms,
        "detail": r.detail,
        "warning": r.warning,
    }


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
    from failover.stages import register_status_sections
    from failover.store import Store

    register_status_sections()
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
from failover.cli_backup import backup_app  # noqa: E402

app.add_typer(backup_app, name="backup")


@app.command()
def switch(
    site: str = typer.Argument(..., help="The site to move."),
    to: str = typer.Option(..., "--to", help="The endpoint to make active."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply the plan (otherwise only show it)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan only."),
    force: bool = typer.Option(
        False, "--force", help="Overwrite DNS records that hold no endpoint's value."
    ),
    allow_stale: bool = typer.Option(
        False, "--allow-stale", help="Restore a snapshot older than the site's limit."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the plan or the run as JSON."),
) -> None:
    """Move a site to another endpoint (manual failover or failback): plan, then --yes."""
    from failover import runbook
    from failover.notify import Notifier
    from failover.store import Store

    loaded = load()
    with Store.open(loaded.state_path) as store:
        runbook.ensure_schema(store)
        plan, existing = runbook.plan_manual(loaded, store, site, to)
        if existing is not None and existing.owner_alive:
            raise UnsafePlan(
                f"run #{existing.id} of {site} is being executed by process "
                f"{existing.owner} (the agent?)",
                hint="wait for it: `failover status` shows its progress",
            )
        if json_out and (dry_run or not yes):
            emit_json(
                {
                    "plan": plan.to_dict(),
                    "resumes_run": existing.id if existing else None,
                    "applied": False,
                }
            )
            return
        if not json_out:
            header = f"resuming run #{existing.id}: " if existing else ""
            lines = plan.lines()
            typer.echo(header + lines[0])
            for line in lines[1:]:
                typer.echo(line)
        if dry_run or not yes:
            if not json_out:
                typer.echo(
                    "dry run: nothing changed"
                    if dry_run
                    else "nothing changed: run again with --yes to apply"
                )
            return
        run = existing or runbook.start_run(
            store, plan, "manual", {"force": force, "allow_stale": allow_stale}
        )
        if existing is not None and (force or allow_stale):
            run.options.update(
                {
                    "force": force or run.options.get("force", False),
                    "allow_stale": allow_stale or run.options.get("allow_stale", False),
                }
            )
            runbook.set_options(store, run.id, run.options)
        notifier = Notifier(loaded.config.notify)
        done = runbook.execute(
            loaded,
            store,
            notifier,
            run,
            progress=None if json_out else lambda m: typer.echo(m, err=True),
        )
        notifier.flush(30)
        if json_out:
            emit_json({"plan": plan.to_dict(), "run": done.to_dict(), "applied": True})
        else:
            for line in runbook.describe_steps(done):
                typer.echo(line)
        if done.status != "done":
            raise FailoverError(
                f"run #{done.id} stopped: {done.detail} (run the same command again to resume it)"
            )
        if not json_out:
            typer.echo(f"{site} is now served by {to}")


from failover.cli_migrate import migrate  # noqa: E402

app.command("migrate")(migrate)

runs_app = typer.Typer(
    help="Journaled runs (failover, failback, switch, migrate).", no_args_is_help=True
)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    site: str | None = typer.Argument(None, help="Only this site."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Every run with its outcome."""
    from failover import runbook
    from failover.humanize import local_time
    from failover.store import Store

    loaded = load()
    if not loaded.state_path.exists():
        items: list[Any] = []
    else:
        with Store.open(loaded.state_path, readonly=True) as store:
            items = runbook.runs(store, site) if store.has_table("runs") else []
    if json_out:
        emit_json([r.to_dict() for r in items])
        return
    if not items:
        typer.echo("no runs")
    for r in items:
        typer.echo(
            f"#{r.id} {local_time(r.created)} {r.site} {r.kind} ({r.trigger}) {r.source} -> "
            f"{r.target}: {r.status}" + (f" ({r.detail})" if r.detail else "")
        )


@runs_app.command("show")
def runs_show(
    run_id: int = typer.Argument(..., help="The run's number."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """One run, step by step."""
    from failover import runbook
    from failover.store import Store

    loaded = load()
    with Store.open(loaded.state_path, readonly=True) as store:
        run = runbook.get_run(store, run_id) if store.has_table("runs") else None
    if run is None:
        raise UsageError(f"no run #{run_id}")
    if json_out:
        emit_json(run.to_dict())
        return
    typer.echo(
        f"#{run.id} {run.site} {run.kind} ({run.trigger}) {run.source} -> {run.target}: "
        f"{run.status}, {run.attempts} attempt(s)"
    )
    for line in runbook.describe_steps(run):
        typer.echo(line)


@runs_app.command("abandon")
def runs_abandon(
    run_id: int = typer.Argument(..., help="The run's number."),
    reason: str = typer.Option("abandoned by hand", "--reason"),
) -> None:
    """Give up on an open run (what it already did stays done; the state says what)."""
    from failover import runbook
    from failover.store import Store

    loaded = load()
    with Store.open(loaded.state_path) as store:
        run = runbook.get_run(store, run_id)
        if run is None or run.status not in runbook.OPEN:
            raise UsageError(f"run #{run_id} is not open")
        if run.owner_alive:
            raise UnsafePlan(f"run #{run_id} is being executed by process {run.owner}")
        runbook.abandon_run(store, run_id, reason)
    done = [s["name"] for s in run.steps if s["status"] == "done"]
    typer.echo(f"run #{run_id} abandoned; steps already done: {', '.join(done) or 'none'}")


@app.command()
def report(
    site: str | None = typer.Argument(None, help="Only this site."),
    since: str | None = typer.Option(None, "--since", help="Start date (YYYY-MM-DD, UTC)."),
    fmt: str = typer.Option("markdown", "--format", help="markdown or json."),
    target: float = typer.Option(99.9, "--target", help="Monthly uptime target in percent."),
) -> None:
    """Incidents as timelines, and uptime per endpoint per month against a target."""
    from datetime import UTC, datetime

    from failover import report as report_mod
    from failover.store import Store

    if fmt not in ("markdown", "json"):
        raise UsageError(f"--format: expected markdown or json, got {fmt!r}")
    if not 0 < target < 100:
        raise UsageError("--target: a percentage between 0 and 100, such as 99.9")
    start = 0.0
    if since:
        try:
            start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise UsageError(
                f"--since: expected a date such as 2026-11-01, got {since!r}"
            ) from None
    loaded = load()
    if site is not None and site not in loaded.config.sites:
        raise UsageError(f"no site {site!r} in {loaded.path}")
    with Store.open(loaded.state_path, readonly=True) as store:
        data = report_mod.build_report(loaded, store, site, start, target / 100)
    if fmt == "json":
        emit_json(data)
    else:
        typer.echo(report_mod.render_markdown(data))


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
        typer.echo(
            f"failover: internal error: {exc.__class__.__name__}: {exc} "
            "(run with --debug for the traceback)",
            err=True,
        )
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
