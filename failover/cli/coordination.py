"""`failover coordination selftest`: prove that the coordination engine honours conditional
writes (create-if-absent, compare-and-swap, and a race of many concurrent writers where
exactly one may win) before several watchers rely on it. The agent runs it at start too."""

from __future__ import annotations

import typer

from failover.cli.context import echo, emit_json, load
from failover.errors import UsageError

coordination_app = typer.Typer(
    help="Several watchers deciding together: the engine they share.\n\n"
    "Examples:\n  failover coordination selftest\n  failover --watcher home coordination selftest --json",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@coordination_app.command("selftest")
def selftest(
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    writers: int | None = typer.Option(
        None,
        "--writers",
        metavar="N",
        help="Concurrent writers in the race [default: the config's].",
    ),
) -> None:
    """Check that the engine honours conditional writes (create-if-absent, compare-and-swap,
    and a race of concurrent writers where exactly one may win); exit 1 when it does not.

    Examples:
      failover coordination selftest
      failover coordination selftest --writers 32 --json
    """
    from providers.coordination import make_coordinator
    from providers.coordination.base import NotHonoured

    loaded = load()
    cfg = loaded.config.coordination
    if cfg is None:
        raise UsageError(f"{loaded.path} has no coordination section")
    if writers is not None and not 2 <= writers <= 64:
        raise UsageError("--writers: expected 2 to 64")
    coordinator = make_coordinator(cfg)
    try:
        report = coordinator.selftest(writers=writers or cfg.selftest_writers)
    finally:
        coordinator.close()
    if json_out:
        emit_json({"engine": coordinator.label, **report.to_dict()})
    else:
        echo(f"{coordinator.label}: {len(report.checks)} checks in {report.seconds:.1f}s")
        for name, ok, detail in report.checks:
            echo(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not report.ok:
        raise NotHonoured(
            f"{coordinator.label} does not honour conditional writes: "
            f"{'; '.join(report.failures())}. Watchers must not coordinate through it.",
            hint="use an S3 service that supports If-None-Match/If-Match on PutObject "
            "(AWS S3, recent SeaweedFS, MinIO, R2), or an etcd cluster",
        )
    if not json_out:
        echo("the engine honours conditional writes: watchers can coordinate through it")
