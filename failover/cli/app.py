"""The command line's app: global options, the commands of each group, and `run()`, the one
place that turns errors into exit codes. A FailoverError prints one line (several for a
config with several problems) and exits with its code; anything else is a bug, shown as a
one-line message unless --debug asks for the traceback.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Sequence

import typer

from failover.cli.context import G
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
    "dns": "failover.cli.dns:dns_app",
    "backup": "failover.cli.backup:backup_app",
    "switch": "failover.cli.runs:switch",
    "migrate": "failover.cli.migrate:migrate",
    "runs": "failover.cli.runs:runs_app",
    "report": "failover.cli.report:report",
}
# Global options that take a value (the command name is the first word after these).
_VALUE_OPTIONS = ("--config", "-c", "--log-format")

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
    import logging

    from failover.logs import setup_logging

    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format: expected text or json, got {log_format!r}")
    G.config_path, G.debug, G.log_format = config, debug, log_format
    setup_logging(log_format, logging.WARNING if quiet else logging.INFO, debug)


def command_named(argv: Sequence[str]) -> str | None:
    """The command `argv` runs (its first word after the global options), or None."""
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return next(args, None)
        if arg in _VALUE_OPTIONS:
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
        if debug:
            raise
        typer.echo(
            f"failover: internal error: {exc.__class__.__name__}: {exc} "
            "(run with --debug for the traceback)",
            err=True,
        )
        return int(ExitCode.FAILED)
    return 0


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
