"""The command line's app: global options, the commands of each group, and `run()`, the one
place that turns errors into exit codes. A FailoverError prints one line (several for a
config with several problems) and exits with its code; anything else is a bug, shown as a
one-line message unless --debug asks for the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from collections.abc import Sequence

import typer

from failover.cli.context import G
from failover.cli.conventions import GLOBAL_WITH_VALUE, FailoverGroup
from failover.errors import ExitCode, FailoverError, UsageError

# The commands in the order of `failover --help`: name -> "module:function" (a command) or
# "module:typer_app" (a group). A command's module is imported only when it runs (or for
# --help and unknown names, which need them all): `failover check` does not import what
# `migrate` or `backup` need.
COMMANDS: dict[str, str] = {
    "validate": "failover.cli.watch:validate",
    "init": "failover.cli.watch:init",
    "check": "failover.cli.watch:check",
    "agent": "failover.cli.watch:agent",
    "status": "failover.cli.watch:status",
    "pause": "failover.cli.maintenance:pause",
    "resume": "failover.cli.maintenance:resume",
    "dns": "failover.cli.dns:dns_app",
    "backup": "failover.cli.backup:backup_app",
    "switch": "failover.cli.runs:switch",
    "migrate": "failover.cli.migrate:migrate",
    "drill": "failover.cli.drill:drill",
    "runs": "failover.cli.runs:runs_app",
    "coordination": "failover.cli.coordination:coordination_app",
    "report": "failover.cli.report:report",
    "status-page": "failover.cli.status_page:status_page_app",
    "doctor": "failover.cli.doctor:doctor",
    "schema": "failover.cli.watch:schema",
    "completion": "failover.cli.completion:completion",
}

app = typer.Typer(
    name="failover",
    help="Watch a hosted server from outside, keep off-provider backups, and move the site "
    "to a standby when the provider falls over.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion: the shell they detect
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


def command_named(argv: Sequence[str]) -> str | None:
    """The command `argv` runs (its first word that is not a global option), or None."""
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return next(args, None)
        if arg in GLOBAL_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def register(names: Sequence[str]) -> None:
    """Add these commands (in --help order) to the app, importing their modules now."""
    for name in COMMANDS:
        if name not in names or name in _registered:
            continue
        module, _, attr = COMMANDS[name].partition(":")
        target = getattr(importlib.import_module(module), attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
        _registered.add(name)


_registered: set[str] = set()


def run(argv: list[str]) -> int:
    debug = "--debug" in argv
    name = command_named(argv)
    try:
        register([name] if name in COMMANDS else list(COMMANDS))
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
