"""`failover drill SITE [--to ENDPOINT] [--dry-run]`: rehearse a failover onto the standby."""

from __future__ import annotations

import os
from typing import Any

import typer

from failover.cli.confirm import Confirm, refuse_if_busy
from failover.cli.context import echo, emit_json, load, open_store, progress_to_stderr
from failover.errors import FailoverError, UsageError


def drill(
    site: str = typer.Argument(..., help="The site whose failover to rehearse."),
    to: str | None = typer.Option(
        None, "--to", help="The standby to drill onto [default: drill.to, else the first standby]."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan only."),
    allow_stale: bool = typer.Option(
        False, "--allow-stale", help="Restore a snapshot older than the site's limit."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the plan or the drill as JSON."),
    run_id: int | None = typer.Option(
        None, "--run", hidden=True, help="Execute this scheduled drill (the agent under cron)."
    ),
) -> None:
    """Rehearse a failover: restore onto the standby, after-restore commands, the site's
    checks; measure RTO and RPO. DNS and the active endpoint are never touched.

    Examples:
      failover drill shop --dry-run
      failover drill shop --to standby --json
    """
    from failover.notify import Notifier
    from failover.runs import journal
    from failover.runs.drill import drill_plan, execute_drill
    from failover.runs.drill_rules import compact, summarize
    from failover.runs.show import describe_steps

    flags = Confirm(yes=not dry_run, dry_run=dry_run, json_out=json_out)
    loaded = load()
    with open_store(loaded) as store:
        journal.ensure_schema(store)
        if run_id is not None:
            run = _scheduled_run(store, site, run_id)
            payload: dict[str, Any] = {"resumes_run": run.id}
        else:
            plan, existing = drill_plan(loaded, store, site, to)
            refuse_if_busy(existing, site)
            header = f"resuming drill #{existing.id}: " if existing else ""
            lines = plan.lines()
            flags.show([header + lines[0], *lines[1:]])
            flags.say(
                f"  DNS and the active endpoint ({plan.source}) are not touched; nothing is fenced"
            )
            payload = {"plan": plan.to_dict(), "resumes_run": existing.id if existing else None}
            if not flags.stop_unless_applying(payload):
                return
            run = existing or journal.start_run(store, plan, "manual", {"allow_stale": allow_stale})
        notifier = Notifier(loaded.config.notify)
        done = execute_drill(
            loaded, store, notifier, run, progress=None if json_out else progress_to_stderr
        )
        notifier.flush(30)
    summary = summarize(done)
    if json_out:
        emit_json({**payload, "run": done.to_dict(), "drill": summary, "applied": True})
    else:
        for line in describe_steps(done):
            echo(line)
    if summary["result"] == "abandoned":
        raise FailoverError(f"drill #{done.id} was abandoned: {done.detail}")
    if summary["result"] != "passed":
        raise FailoverError(
            f"drill #{done.id} FAILED at {summary['failed_step'] or '?'}: "
            f"{summary['output'] or done.detail}"
        )
    rpo = (
        f"the snapshot was {compact(summary['rpo'])} old (RPO)"
        if summary["rpo"] is not None
        else "no snapshot was restored (RPO unknown)"
    )
    flags.say(
        f"drill passed: {done.target} passed the site's checks {compact(summary['rto'])} after "
        f"the start (RTO); {rpo}. {done.source} is still the active endpoint."
    )


def _scheduled_run(store: Any, site: str, run_id: int) -> Any:
    from failover.runs import journal

    run = journal.get_run(store, run_id)
    if run is None or run.kind != "drill" or run.site != site:
        raise UsageError(f"no drill #{run_id} of site {site}")
    if run.status != "running":
        raise UsageError(f"drill #{run_id} is {run.status}, not waiting to run")
    if run.owner != os.getppid():  # the agent's `check` that started this process owns it
        refuse_if_busy(run, site)
    return run
