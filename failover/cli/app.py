"""The command line's app: global options, the commands of each group, and `run()`, the one
place that turns errors into exit codes. A FailoverError prints one line (several for a
config with several problems) and exits with its code; anything else is a bug, shown as a
one-line message unless --debug asks for the traceback.
"""

from __future__ import annotations

import logging
import sys
import types

import typer

from failover.cli import (
    backup,
    coordination,
    dns,
    doctor,
    drill,
    maintenance,
    migrate,
    report,
    runs,
    status_page,
    watch,
)
from failover.cli.context import G
from failover.cli.conventions import FailoverGroup
from failover.errors import ExitCode, FailoverError, UsageError

app = typer.Typer(
    name="failover",
    help="Watch a hosted server from outside, keep off-provider backups, and move the site "
    "to a standby when the provider falls over.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion SHELL
    cls=FailoverGroup,  # global options anywhere; metavars, summaries, examples
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from failover import __version__

        typer.echo(f"failover {__version__}")
        raise typer.Exit(0)


@app.callback(
    epilog="\b\nExamples:\n  failover init failover.yaml && failover validate -c failover.yaml"
    "\n  failover status --json"
)
def _global_options(
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        envvar="FAILOVER_CONFIG",
        metavar="PATH",
        help="Config file [default: ./failover.yaml, then /etc/failover/failover.yaml]. "
        "Global options may also follow the command.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Debug logs and tracebacks."),
    log_format: str = typer.Option(
        "text", "--log-format", metavar="FORMAT", help="Log lines: text or json."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors in the log."),
    _version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        expose_value=True,
        callback=_show_version,
        help="Print the version and exit.",
    ),
    watcher: str | None = typer.Option(
        None,
        "--watcher",
        envvar="FAILOVER_WATCHER",
        metavar="NAME",
        help="This machine's watcher name (with a coordination section) [default: "
        "`watcher:` in watcher.yaml beside the config].",
    ),
) -> None:
    from failover.logs import setup_logging

    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format: expected text or json, got {log_format!r}")
    G.config_path, G.debug, G.log_format = config, debug, log_format
    G.watcher = watcher
    setup_logging(log_format, logging.WARNING if quiet else logging.INFO, debug)


# The order here is the order of `failover --help`.
app.command()(watch.validate)
app.command()(watch.init)
app.command()(watch.check)
app.command()(watch.agent)
app.command()(watch.status)
app.command()(maintenance.pause)
app.command()(maintenance.resume)
app.add_typer(dns.dns_app, name="dns")
app.add_typer(backup.backup_app, name="backup")
app.command()(runs.switch)
app.command("migrate")(migrate.migrate)
app.command("drill")(drill.drill)
app.add_typer(runs.runs_app, name="runs")
app.add_typer(coordination.coordination_app, name="coordination")
app.command()(report.report)
app.add_typer(status_page.status_page_app, name="status-page")
app.command()(doctor.doctor)
app.command()(watch.schema)


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
        state = _state_error(exc)
        if state is not None:  # a full disk, a damaged or read-only state: one line
            _print_error(state, debug)
            return int(state.exit_code)
        if debug:
            raise
        typer.echo(
            f"failover: internal error: {exc.__class__.__name__}: {exc} "
            "(run with --debug for the traceback)",
            err=True,
        )
        return int(ExitCode.FAILED)
    return 0


def _state_error(exc: Exception) -> FailoverError | None:
    """A SQLite error met in the middle of a command, as the state's one-line error."""
    sqlite3 = sys.modules.get("sqlite3")  # not loaded: it cannot be a SQLite error
    if sqlite3 is None or not isinstance(exc, sqlite3.Error):
        return None
    from failover.store import state_error

    return state_error(exc)


def _click_exceptions() -> types.SimpleNamespace:
    # typer may vendor click (typer._click): reach its classes through typer's own exports.
    base = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return types.SimpleNamespace(Exit=typer.Exit, Abort=typer.Abort, ClickException=base)


def _print_error(exc: FailoverError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    lines = str(exc).splitlines() or [exc.__class__.__name__]
    for line in lines:
        typer.echo(f"failover: {line}" if len(lines) == 1 else line, err=True)
