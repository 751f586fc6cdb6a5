"""`failover completion SHELL`: the shell completion script for a shell named on the command
line. typer's --show-completion guesses the shell from the process tree, so run from a
provisioning script under sh, or under a CI runner, it prints nothing useful."""

from __future__ import annotations

import sys

import typer

from failover.errors import UsageError


def completion(
    shell: str = typer.Argument(..., metavar="SHELL", help="bash, zsh, fish or powershell."),
) -> None:
    """Print the shell completion script for SHELL, to source it or install it where your
    shell reads completions.

    Examples:
      failover completion bash > /etc/bash_completion.d/failover
      failover completion zsh > "${fpath[1]}/_failover"
      failover completion fish > ~/.config/fish/completions/failover.fish
    """
    # typer's own scripts and list of shells (typer is capped in pyproject where the code
    # reaches into it)
    from typer._completion_shared import _completion_scripts, get_completion_script

    if shell not in _completion_scripts:
        raise UsageError(f"SHELL: expected one of {', '.join(_completion_scripts)}, got {shell!r}")

    script = get_completion_script(
        prog_name="failover", complete_var="_FAILOVER_COMPLETE", shell=shell
    )
    sys.stdout.write(script + "\n")
