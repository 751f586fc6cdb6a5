"""The command line follows its conventions in every command (cli/conventions.py): global
options anywhere, metavars that are names, whole summaries, an example at the end of every
help, durations written as in the config, JSON documents with a version; `--version`,
shell completion and `failover schema` work as a user runs them."""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from failover import __version__
from failover.cli.app import COMMANDS, _click_exceptions, app, register
from failover.cli.conventions import hoist_global_options
from tests.support import require_binary, write
from tests.support.cli import failover

REPO = Path(__file__).resolve().parents[2]


def _tree() -> Any:
    register(list(COMMANDS))  # the app adds a command when it runs it; here: all of them
    tree = typer.main.get_command(app)
    assert set(getattr(tree, "commands", {})) >= set(COMMANDS)
    return tree


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _help(*words: str) -> str:
    proc = failover(*words, "--help")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_command_ends_its_help_with_an_example() -> None:
    missing = [
        " ".join(path) or "(top)"
        for path, cmd in _commands(_tree())
        if "failover " not in (cmd.epilog or "")
    ]
    assert not missing, (
        f"no `Examples:` block at the end of the docstring of: {missing} "
        "(cli/conventions.py moves it into the help's epilog)"
    )
    text = _help("backup", "restore")
    assert text.rstrip().splitlines()[-1].strip().startswith("failover backup restore")


def test_metavars_are_names_and_summaries_are_whole() -> None:
    root = _tree()
    ctx = typer.Context(root)
    for path, cmd in _commands(root):
        for param in cmd.params:
            record = param.get_help_record(ctx)
            if record is None:
                continue
            assert "<" not in record[0] and "{" not in record[0], (path, record[0])
            if param.param_type_name == "argument":
                assert record[0].rstrip(".").isupper(), (path, record)
        if cmd.short_help:
            assert not cmd.short_help.endswith("..."), path
    usage = _help("switch").splitlines()[0]
    assert usage == "Usage: failover switch [OPTIONS] SITE"
    assert "[SITE]" in _help("backup", "run").splitlines()[0]
    assert "--to ENDPOINT" in _help("switch")
    assert "--wait DURATION" in _help("backup", "run")
    assert "-c, --config PATH" in _help()
    top = " ".join(_help().split())  # wherever the lines wrap (the widest command name decides)
    # the list of commands shows whole summaries: the one of `validate` goes past 45 chars
    assert "each with file, line" in top and "..." not in top.split("Commands:")[1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["validate", "-c", "x.yaml"], ["-c", "x.yaml", "validate"]),
        (["status", "--log-format", "json"], ["--log-format", "json", "status"]),
        (["-q", "check", "--debug"], ["--debug", "-q", "check"]),
        (
            ["backup", "run", "shop", "--config=x.yaml"],
            ["--config=x.yaml", "backup", "run", "shop"],
        ),
        # an option's value that looks like a global option stays that option's value
        (["pause", "shop", "--reason", "-q"], ["pause", "shop", "--reason", "-q"]),
        (["switch", "shop", "--to", "-c", "-c", "y"], ["-c", "y", "switch", "shop", "--to", "-c"]),
        # after `--` nothing moves
        (["report", "--", "-q"], ["report", "--", "-q"]),
    ],
)
def test_global_options_are_moved_in_front_of_the_command(
    argv: list[str], expected: list[str]
) -> None:
    root = _tree()
    assert hoist_global_options(root, typer.Context(root), argv) == expected


def test_global_options_after_the_command_work(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml",
        "state: s.db\nsites:\n  s:\n    hostname: s.test\n    endpoints: {a: {address: 127.0.0.1}}\n"
        "    checks: [{type: tcp, port: 1, timeout: 1s}]\n",
    )
    proc = failover("validate", "-c", str(config))
    assert proc.returncode == 0 and "valid" in proc.stdout, proc.stderr
    proc = failover("check", "--log-format", "json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert lines and all("level" in line for line in lines)


def test_version_matches_the_package_metadata() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    proc = failover("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"failover {__version__}"


def test_usage_errors_exit_2_through_typers_click() -> None:
    # app.py reaches typer's (possibly vendored) click exception classes: pyproject caps
    # typer at the releases where this holds.
    exc = _click_exceptions()
    assert issubclass(typer.BadParameter, exc.ClickException)
    proc = failover("pause", "shop", "--for", "soon")
    assert proc.returncode == 2
    assert "expected a duration such as 30s" in proc.stderr and "Traceback" not in proc.stderr
    assert failover("no-such-command").returncode == 2


def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    bash = require_binary("bash")
    # the shell is named, not guessed from the process tree (typer's --show-completion
    # found none under some CI runners and printed nothing)
    proc = failover("completion", "bash")
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    assert "_FAILOVER_COMPLETE" in script
    bad = failover("completion", "tcsh")
    assert bad.returncode == 2 and "SHELL: expected one of bash" in bad.stderr
    import os
    import sys

    # the completion script runs the program through `env`, so it must be an executable on
    # PATH (a shell function is not seen): a shim that runs this checkout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "failover"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec "{sys.executable}" -m failover "$@"\n')
    shim.chmod(0o755)
    program = (
        script + "\nCOMP_WORDS=(failover va); COMP_CWORD=1; _failover_completion failover; "
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        "COMP_WORDS=(failover backup r); COMP_CWORD=2; _failover_completion failover; "
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        [bash, "--norc", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    words = proc.stdout.split()
    assert "validate" in words, proc.stdout + proc.stderr
    assert "run" in words and "restore" in words, proc.stdout + proc.stderr


def test_schema_prints_the_shipped_schema() -> None:
    proc = failover("schema")
    assert proc.returncode == 0
    assert proc.stdout == (REPO / "configs" / "failover.schema.json").read_text()
    assert json.loads(proc.stdout)["title"] == "failover config"
    # the package's copy is the configs/ file itself (a link), so the wheel ships it
    shipped = REPO / "failover" / "config" / "failover.schema.json"
    assert shipped.resolve() == (REPO / "configs" / "failover.schema.json").resolve()


def test_durations_are_written_as_in_the_config() -> None:
    root = _tree()
    for path, cmd in _commands(root):
        for param in cmd.params:
            if param.param_type_name == "option" and any(
                o in ("--wait", "--timeout", "--deadline", "--for") for o in param.opts
            ):
                assert param.metavar == "DURATION", (path, param.opts)


def test_json_documents_carry_a_version(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml",
        "state: s.db\nsites:\n  s:\n    hostname: s.test\n    endpoints: {a: {address: 127.0.0.1}}\n"
        "    checks: [{type: tcp, port: 1, timeout: 1s}]\n",
    )
    for argv in (
        ["validate"],
        ["check"],
        ["status"],
        ["runs", "list"],
        ["dns", "show"],
        ["backup", "list"],
        ["report", "--format", "json"],
    ):
        args = [*argv, "--json"] if argv[0] != "report" else argv
        proc = failover(*args, config=config)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert json.loads(proc.stdout)["version"] == 1, argv


def test_commands_that_find_nothing_say_so(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml",
        "state: s.db\nsites:\n  s:\n    hostname: s.test\n    endpoints: {a: {address: 127.0.0.1}}\n"
        "    checks: [{type: tcp, port: 1, timeout: 1s}]\n",
    )
    for argv, said in (
        (["dns", "show"], "no site has `dns`"),
        (["backup", "list"], "no site has a backup set"),
        (["backup", "verify"], "no site has a backup set"),
        (["backup", "run"], "no site has a backup set"),
        (["runs", "list"], "no runs yet"),
    ):
        proc = failover(*argv, config=config)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert said in proc.stdout + proc.stderr, argv
