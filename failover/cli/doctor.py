"""`failover doctor`: everything a failover will need, checked now."""

from __future__ import annotations

import typer

from failover.cli.context import duration_option, echo, emit_json, load


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    timeout: float = typer.Option(
        5.0,
        "--timeout",
        metavar="DURATION",
        parser=duration_option("--timeout"),
        help="How long to wait for each DNS or HTTP answer.",
    ),
) -> None:
    """Check everything a failover will need, one line each with a hint: restic and the
    repository (reachable, password right), SSH to every endpoint (key file, host key,
    sudo), the DNS provider (credentials, zone, records holding an endpoint's value), every
    authoritative nameserver, the canaries, the state file, this machine's clock (against
    the endpoints' HTTP Date header), the notification targets. Exit 0 when all pass, 1
    otherwise. Nothing is changed.

    Examples:
      failover doctor
      failover doctor --json | jq '.checks[] | select(.ok == false)'
    """
    from failover.doctor.checks import diagnose
    from failover.doctor.report import exit_code, render, to_json

    loaded = load()
    findings = diagnose(loaded, timeout=timeout)
    if json_out:
        emit_json(to_json(findings))
    else:
        for line in render(findings):
            echo(line)
    raise typer.Exit(exit_code(findings))
