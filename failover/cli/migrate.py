"""`failover migrate`: move a site onto another server, one you have (--to) or a new one
created from a compute template (--provision). The plan is shown first; --yes applies it.

Only typer and the standard library are imported here at module level (the command line
must start fast); the core (failover.runs.migrate) is imported when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from failover.cli.confirm import Confirm, execute_run, refuse_if_busy
from failover.cli.context import emit_json, load, open_store, progress_to_stderr
from failover.errors import FailoverError, UsageError

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.runs.model import Run
    from failover.store import Store


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
    """Move a site to another server, creating it first with --provision: plan, then --yes.

    Examples:
      failover migrate shop --to standby --dry-run
      failover migrate shop --provision small --yes --write-config
    """
    from failover.runs import journal
    from failover.runs import migrate as core

    flags = Confirm(yes=yes, dry_run=dry_run, json_out=json_out)
    loaded = load()
    with open_store(loaded) as store:
        journal.ensure_schema(store)
        if to is None and provision is None and write_config:
            _write_pending(loaded, store, site, json_out)
            return
        plan, existing = core.plan_migrate(
            loaded, store, site, to=to, provision=provision, name=name
        )
        refuse_if_busy(existing, site)
        result: dict[str, Any] = {
            "plan": plan.to_dict(),
            "resumes_run": existing.id if existing else None,
        }
        lines = plan.lines()
        flags.show([(f"resuming run #{existing.id}: " if existing else "") + lines[0], *lines[1:]])
        more = " --from-snapshot" if plan.needs_confirmation and not from_snapshot else ""
        if not flags.stop_unless_applying(result, more_flags=more):
            return
        options = {
            "template": provision,
            "from_snapshot": from_snapshot,
            "allow_stale": from_snapshot,
            "destroy_on_failure": destroy_on_failure,
        }
        run = core.start_or_resume(store, plan, existing, options)
        done = execute_run(loaded, store, run, flags)
        result.update(applied=True, run=done.to_dict())
        if done.status != "done":
            _failed(loaded, store, done, flags, result)
    _finish(loaded, site, done, flags, result, write_config)


def _failed(
    loaded: LoadedConfig, store: Store, done: Run, flags: Confirm, result: dict[str, Any]
) -> None:
    """What a failed migrate left behind, then the error (exit 1)."""
    from failover.runs import migrate as core

    left = core.on_failure(
        loaded,
        store,
        done,
        destroy=bool(done.options.get("destroy_on_failure")),
        progress=progress_to_stderr,
    )
    result["after_failure"] = left
    flags.show(f"  {line}" for line in left)
    if flags.json_out:
        emit_json(result)
    raise FailoverError(core.failure_message(done, left))


def _finish(
    loaded: LoadedConfig,
    site: str,
    done: Run,
    flags: Confirm,
    result: dict[str, Any],
    write_config: bool,
) -> None:
    """The new endpoint's block: printed, or added to the config with --write-config."""
    from failover.runs import migrate as core

    block = core.new_endpoint(done)
    result["endpoint"] = {"name": done.target, "block": block} if block else None
    written = False
    if block is not None:
        flags.say(f"the new endpoint, under sites.{site}.endpoints:")
        flags.show(f"  {line}" for line in core.config_block(done.target, block).splitlines())
        if write_config:
            try:
                core.write_endpoint(loaded, site, done.target, block)
            except FailoverError as exc:
                raise UsageError(
                    f"the migrate is done, but {loaded.path} was not changed: {exc}"
                ) from None
            written = True
            flags.say(f"added endpoint {done.target} to {loaded.path}")
        else:
            flags.say(
                f"{loaded.path} was not changed: add the block yourself, or run "
                f"`failover migrate {site} --write-config`"
            )
    result["config_written"] = written
    if flags.json_out:
        emit_json(result)
    flags.say(
        f"{site} is now served by {done.target}; {done.source} is no longer active "
        "(it still runs: shut it down when you no longer need it)"
    )


def _write_pending(loaded: LoadedConfig, store: Store, site: str, json_out: bool) -> None:
    """`migrate SITE --write-config` alone: add the block of the server the last migrate
    made active, which the config file does not have yet."""
    from failover.runs import migrate as core

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
