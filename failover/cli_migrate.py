"""`failover migrate`: move a site onto another server, one you have (--to) or a new one
created from a compute template (--provision). The plan is shown first; --yes applies it.

Only typer and the standard library are imported here at module level (the command line
must start fast); the core (failover.migrate, the runbook) is imported when it runs.
"""

from __future__ import annotations

from typing import Any

import typer


def migrate(
    site: str = typer.Argument(..., help="The site to move."),
    to: str | None = typer.Option(
        None,
        "--to",
        metavar="ENDPOINT",
        help="Move onto this endpoint of the site's (a server you already have).",
    ),
    provision: str | None = typer.Option(
        None,
        "--provision",
        metavar="TEMPLATE",
        help="Move onto a new server created from "
        "this compute template (compute_templates in the config).",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        metavar="NAME",
        help="The new server's endpoint name [default: the template's name].",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply the plan (otherwise only show it)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan only."),
    from_snapshot: bool = typer.Option(
        False,
        "--from-snapshot",
        help="The site's server does not answer: restore the newest "
        "snapshot (its age is in the plan) instead of a final backup.",
    ),
    write_config: bool = typer.Option(
        False,
        "--write-config",
        help="Add the new endpoint's block to the config file "
        "(comments and layout kept); otherwise it is printed for you to add.",
    ),
    destroy_on_failure: bool = typer.Option(
        False,
        "--destroy-on-failure",
        help="If the run fails before DNS points at the new server, delete the server it created.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the plan or the run as JSON."),
) -> None:
    """Move a site to another server, creating it first with --provision: plan, then --yes."""
    from failover import migrate as core
    from failover import runbook
    from failover.cli import emit_json, load
    from failover.errors import FailoverError, UnsafePlan, UsageError
    from failover.notify import Notifier
    from failover.store import Store

    def out(line: str = "") -> None:
        if not json_out:
            typer.echo(line)

    def progress(message: str) -> None:
        typer.echo(message, err=True)

    if dry_run and yes:
        raise UsageError("--dry-run and --yes contradict each other: pick one")
    loaded = load()
    with Store.open(loaded.state_path) as store:
        runbook.ensure_schema(store)
        if to is None and provision is None and write_config:
            _write_pending(core, loaded, store, site, json_out)
            return
        plan, existing = core.plan_migrate(
            loaded, store, site, to=to, provision=provision, name=name
        )
        if existing is not None and existing.owner_alive:
            raise UnsafePlan(
                f"run #{existing.id} of {site} is being executed by process {existing.owner}",
                hint="wait for it: `failover status` shows its progress",
            )
        result: dict[str, Any] = {
            "plan": plan.to_dict(),
            "resumes_run": existing.id if existing else None,
            "applied": False,
        }
        lines = plan.lines()
        out((f"resuming run #{existing.id}: " if existing else "") + lines[0])
        for line in lines[1:]:
            out(line)
        if dry_run or not yes:
            if json_out:
                emit_json(result)
                return
            if dry_run:
                out("dry run: nothing changed")
            else:
                more = " --from-snapshot" if plan.needs_confirmation and not from_snapshot else ""
                out(f"nothing changed: run again with --yes{more} to apply")
            return
        if existing is None and plan.needs_confirmation and not from_snapshot:
            raise UnsafePlan(
                f"{plan.source} does not answer, so there is no final backup: the newest "
                "snapshot would be restored (its age is in the plan above)",
                hint="add --from-snapshot to confirm",
            )
        if existing is None:
            run = runbook.start_run(
                store,
                plan,
                "manual",
                {
                    "template": provision,
                    "from_snapshot": from_snapshot,
                    "allow_stale": from_snapshot,
                    "destroy_on_failure": destroy_on_failure,
                },
            )
        else:
            run = existing
            if destroy_on_failure != bool(run.options.get("destroy_on_failure")):
                run.options["destroy_on_failure"] = destroy_on_failure
                runbook.set_options(store, run.id, run.options)
        notifier = Notifier(loaded.config.notify)
        done = runbook.execute(loaded, store, notifier, run, progress=progress)
        notifier.flush(30)
        result.update(applied=True, run=done.to_dict())
        if not json_out:
            for line in runbook.describe_steps(done):
                typer.echo(line)
        if done.status != "done":
            left = core.on_failure(
                loaded, store, done, destroy=destroy_on_failure, progress=progress
            )
            result["after_failure"] = left
            for line in left:
                out(f"  {line}")
            if json_out:
                emit_json(result)
            failed = next((s for s in done.steps if s["status"] == "failed"), None)
            where = f" at {failed['name']}" if failed else ""
            detail = (failed["detail"] if failed else done.detail) or "failed"
            again = (
                ""
                if any("is closed" in line for line in left)
                else " (run the same command again to resume it)"
            )
            raise FailoverError(f"migrate run #{done.id} stopped{where}: {detail}{again}")
        block = core.new_endpoint(done)
        result["endpoint"] = {"name": done.target, "block": block} if block else None
        written = False
        if block is not None:
            out(f"the new endpoint, under sites.{site}.endpoints:")
            for line in core.config_block(done.target, block).splitlines():
                out(f"  {line}")
            if write_config:
                try:
                    core.write_endpoint(loaded, site, done.target, block)
                except FailoverError as exc:
                    raise UsageError(
                        f"the migrate is done, but {loaded.path} was not changed: {exc}"
                    ) from None
                written = True
                out(f"added endpoint {done.target} to {loaded.path}")
            else:
                out(
                    f"{loaded.path} was not changed: add the block yourself, or run "
                    f"`failover migrate {site} --write-config`"
                )
        result["config_written"] = written
        if json_out:
            emit_json(result)
        out(
            f"{site} is now served by {done.target}; {done.source} is no longer active "
            "(it still runs: shut it down when you no longer need it)"
        )


def _write_pending(core: Any, loaded: Any, store: Any, site: str, json_out: bool) -> None:
    """`migrate SITE --write-config` alone: add the block of the server the last migrate
    made active, which the config file does not have yet."""
    from failover.cli import emit_json
    from failover.errors import UsageError

    pending = core.pending_endpoint(loaded, store, site)
    if pending is None:
        raise UsageError(
            f"nothing to add: the active endpoint of {site} is in {loaded.path}",
            hint="to move the site, give --to ENDPOINT or --provision TEMPLATE",
        )
    name, block = pending
    core.write_endpoint(loaded, site, name, block)
    if json_out:
        emit_json({"endpoint": {"name": name, "block": block}, "config_written": True})
    else:
        typer.echo(f"added endpoint {name} to {loaded.path}:")
        for line in core.config_block(name, block).splitlines():
            typer.echo(f"  {line}")
