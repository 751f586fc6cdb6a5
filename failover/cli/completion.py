"""`failover completion SHELL`: the shell completion script for a shell named on the command
line. typer's --show-completion guesses the shell from the process tree, so run from a
provisioning script under sh, or under a CI runner, it prints nothing useful."""

from __future__ import annotations

import sys

import typer

from failover.errors import UsageError

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


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
    if shell not in SHELLS:
        raise UsageError(f"SHELL: expected one of {', '.join(SHELLS[:-1])}, got {shell!r}")
    # typer's own script (typer is capped in pyproject where the code reaches into it)
    from typer._completion_shared import get_completion_script

    script = get_completion_script(
        prog_name="failover", complete_var="_FAILOVER_COMPLETE", shell=shell
    )
    sys.stdout.write(script + "\n")
