"""`failover switch` (manual failover or failback) and `failover runs list|show|abandon`."""

from __future__ import annotations

from typing import Any

import typer

from failover.cli.confirm import Confirm, execute_run, refuse_if_busy
from failover.cli.context import echo, emit_json, load, open_store
from failover.errors import ExitCode, FailoverError, UnsafePlan, UsageError

RUN_ID_MAX = 2**63 - 1  # SQLite's largest integer: a bigger number names no run

runs_app = typer.Typer(
    help="Journaled runs (failover, failback, switch, migrate, drill).\n\n"
    "Examples:\n  failover runs list\n  failover runs show 12",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def switch(
    site: str = typer.Argument(..., help="The site to move."),
    to: str = typer.Option(..., "--to", metavar="ENDPOINT", help="The endpoint to make active."),
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
    """Move a site to another endpoint (manual failover or failback): plan, then --yes.

    Examples:
      failover switch shop --to standby            # the plan
      failover switch shop --to primary --yes      # failback, applied
    """
    from failover.runs import journal
    from failover.runs.engine import REFUSED, manual_plan
    from failover.runs.plan import resumed_options

    flags = Confirm(yes=yes, dry_run=dry_run, json_out=json_out)
    loaded = load()
    with open_store(loaded) as store:
        plan, existing = manual_plan(loaded, store, site, to)
        refuse_if_busy(existing, site)
        header = f"resuming run #{existing.id}: " if existing else ""
        lines = plan.lines()
        flags.show([header + lines[0], *lines[1:]])
        payload: dict[str, Any] = {
            "plan": plan.to_dict(),
            "resumes_run": existing.id if existing else None,
        }
        options = {"force": force, "allow_stale": allow_stale}
        if dry_run:
            _dry_run(loaded, store, plan, options, flags, payload)
            return
        if not flags.stop_unless_applying(payload):
            return
        if existing is None:
            run = journal.start_run(store, plan, "manual", options)
        else:
            run = existing
            run.options = resumed_options(run.options, **options)
            journal.set_options(store, run.id, run.options)
        done = execute_run(loaded, store, run, flags)
    if json_out:
        emit_json({**payload, "run": done.to_dict(), "applied": True})
    if done.status == REFUSED:
        raise FailoverError(f"run #{done.id} did not start: {done.detail}; the run is closed")
    if done.status != "done":
        raise FailoverError(
            f"run #{done.id} stopped: {done.detail} (run the same command again to resume it, "
            f"or give it up with `failover runs abandon {done.id}`)"
        )
    flags.say(f"{site} is now served by {to}")


def _dry_run(
    loaded: Any,
    store: Any,
    plan: Any,
    options: dict[str, Any],
    flags: Confirm,
    payload: dict[str, Any],
) -> None:
    """--dry-run: the read-only preflight, then what the run would do or where it would stop."""
    from failover.runs.engine import dry_run

    ok, detail = dry_run(loaded, store, plan, options)
    payload["preflight"] = {"ok": ok, "detail": detail}
    if flags.json_out:
        emit_json({**payload, "applied": False})
    elif ok:
        echo(f"dry run: preflight passes ({detail}); nothing changed")
    else:
        echo(f"dry run: the run would stop at preflight: {detail}; nothing changed")
    if not ok:
        raise typer.Exit(int(ExitCode.FAILED))


@runs_app.command("list")
def runs_list(
    site: str | None = typer.Argument(None, help="Only this site."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Every run with its outcome.

    Examples:
      failover runs list shop
      failover runs list --json | jq '.runs[] | select(.status != "done")'
    """
    from failover.humanize import local_time
    from failover.runs import journal

    loaded = load()
    items: list[Any] = []
    if loaded.state_path.exists():
        with open_store(loaded, readonly=True) as store:
            items = journal.runs(store, site) if journal.has_runs(store) else []
    if json_out:
        emit_json({"runs": [r.to_dict() for r in items]})
        return
    if not items:
        echo("no runs yet" + (f" of {site}" if site else ""))
    for r in items:
        echo(
            f"#{r.id} {local_time(r.created)} {r.site} {r.kind} ({r.trigger}) {r.source} -> "
            f"{r.target}: {r.status}" + (f" ({r.detail})" if r.detail else "")
        )


@runs_app.command("show")
def runs_show(
    run_id: int = typer.Argument(
        ..., metavar="RUN", help="The run's number.", min=1, max=RUN_ID_MAX
    ),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """One run, step by step.

    Examples:
      failover runs show 12
    """
    from failover.runs import journal
    from failover.runs.show import describe_steps

    loaded = load()
    with open_store(loaded, readonly=True) as store:
        run = journal.get_run(store, run_id) if journal.has_runs(store) else None
    if run is None:
        raise UsageError(f"no run #{run_id}")
    if json_out:
        emit_json(run.to_dict())
        return
    echo(
        f"#{run.id} {run.site} {run.kind} ({run.trigger}) {run.source} -> {run.target}: "
        f"{run.status}, {run.attempts} attempt(s)"
    )
    for line in describe_steps(run):
        echo(line)


@runs_app.command("abandon")
def runs_abandon(
    run_id: int = typer.Argument(
        ..., metavar="RUN", help="The run's number.", min=1, max=RUN_ID_MAX
    ),
    reason: str = typer.Option(
        "abandoned by hand", "--reason", metavar="TEXT", help="Kept with the run."
    ),
) -> None:
    """Give up on an open run (what it already did stays done; the state says what).

    Examples:
      failover runs abandon 12 --reason "fixed by hand"
    """
    from failover.runs import journal
    from failover.runs.model import OPEN

    loaded = load()
    with open_store(loaded) as store:
        run = journal.get_run(store, run_id)
        if run is None or run.status not in OPEN:
            raise UsageError(f"run #{run_id} is not open")
        if run.owner_alive and run.kind != "drill":  # a drill watches for it and stops
            raise UnsafePlan(f"run #{run_id} is being executed by process {run.owner}")
        journal.abandon_run(store, run_id, reason)
    done = [s["name"] for s in run.steps if s["status"] == "done"]
    echo(f"run #{run_id} abandoned; steps already done: {', '.join(done) or 'none'}")
    if run.kind == "drill" and run.owner_alive:
        echo(f"the drill stops before its next step (process {run.owner})")
