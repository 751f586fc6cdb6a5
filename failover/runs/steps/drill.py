"""The steps only a drill has, and how a drill ends when a step fails (see failover.runs.drill).

A drill's other steps are the failover's own (preflight, restore, after_restore, recheck in
steps/common.py), so that the rehearsal runs exactly what the night of the outage runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from failover.errors import FailoverError
from failover.logs import get_logger
from failover.notify import Event
from failover.runs import journal
from failover.runs.drill_rules import compact, drill_rpo, drill_rto
from failover.runs.model import DRILL_FLUNKED, Run, StepContext, StepFailed, StepOut
from failover.runs.steps.common import run_commands

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.notify import Notifier
    from failover.store import Store

log = get_logger("drill")

OUTPUT_LIMIT = 2000  # characters of a failed step's output in the notice


def step_verify_current(ctx: StepContext) -> StepOut:
    """A warm standby is not restored by a drill: it must already hold the newest snapshot
    (failover.backup.verify.compare_with_endpoint says what "current" means)."""
    from failover.backup.verify import compare_with_endpoint

    site, run = ctx.site, ctx.run
    drill = site.failover.drill
    ctx.progress(f"comparing a sample of the newest snapshot's files with {run.target}")
    result = compare_with_endpoint(
        ctx.loaded,
        run.site,
        run.target,
        root=site.failover.restore_target,
        sample=drill.sample if drill is not None else 20,
    )
    refreshed = ctx.store.get_meta(f"warm_refresh:{run.site}:{run.target}")
    note = (
        f" (last warm refresh {compact(time.time() - float(refreshed))} ago)" if refreshed else ""
    )
    if not result.current:
        raise StepFailed(f"warm standby {run.target} is not current: {result.summary()}{note}")
    return result.summary() + note, {
        "snapshot": result.snapshot,
        "snapshot_time": result.snapshot_time,
    }


def step_cleanup(ctx: StepContext) -> StepOut:
    drill = ctx.site.failover.drill
    commands = drill.cleanup if drill is not None else []
    if journal.run_status(ctx.store, ctx.run.id) == "abandoned":
        # a real failover took over a moment ago: it needs the standby as it is
        raise StepFailed("the drill was abandoned: no cleanup")
    run_commands(ctx.loaded, ctx.run.site, ctx.run.target, commands)
    return f"ran {len(commands)} cleanup command(s) on {ctx.run.target}", {}


def step_drill_result(ctx: StepContext) -> StepOut:
    """RTO and RPO from the journal (the steps' times), and the notice when asked for."""
    run = journal.get_run(ctx.store, ctx.run.id) or ctx.run
    rto = drill_rto(run.steps, run.created, run.attempts)
    rpo = drill_rpo(run.created, ctx.data.get("snapshot_time"))
    if rto is None:  # the recheck step passed, or this step would not run
        raise StepFailed("the drill has no recheck time to measure the RTO from")
    detail = f"RTO {compact(rto)}, " + (
        f"RPO {compact(rpo)}" if rpo is not None else "RPO unknown (no snapshot restored)"
    )
    drill = ctx.site.failover.drill
    if drill is not None and drill.notify_on_pass:
        ctx.notifier.send(
            Event(
                "drill",
                f"[{run.site}] drill onto {run.target} passed",
                f"Drill #{run.id}: {run.target} passed the site's checks {compact(rto)} after "
                f"the start (RTO); the snapshot was "
                + (f"{compact(rpo)} old (RPO)" if rpo is not None else "not involved")
                + f". DNS and the active endpoint ({run.source}) were not touched.",
                site=run.site,
                endpoint=run.target,
                level="success",
            )
        )
    return detail, {"rto": rto, "rpo": rpo, "run_detail": detail}


# --- a drill that fails ----------------------------------------------------------------------


def drill_failed(
    loaded: LoadedConfig,
    store: Store,
    notifier: Notifier,
    run: Run,
    step: str,
    message: str,
    interrupted: bool,
) -> None:
    """A step of a drill failed (engine.execute journaled the step): the drill is over. Its
    cleanup runs (unless nothing was done yet), the steps not reached are marked so, the run
    ends flunked and the owner is told what failed with the step's output. An abandoned
    drill (a real failover took over) and a drill interrupted by a person end quietly."""
    extra = {"site": run.site, "run": str(run.id)}
    if journal.run_status(store, run.id) == "abandoned":
        log.info("drill #%d abandoned; step %s stopped: %s", run.id, step, message, extra=extra)
        return
    if interrupted:
        journal.abandon_run(store, run.id, f"interrupted at {step} (Ctrl-C)")
        return
    cleanup = _cleanup(loaded, store, run, step)
    _mark_not_reached(store, run, step)
    one_line = message.replace("\n", "; ")
    if not journal.close_run(store, run.id, DRILL_FLUNKED, f"{step}: {one_line}"):
        return  # abandoned meanwhile
    log.error("drill FAILED at %s: %s", step, one_line, extra={**extra, "step": step})
    output = message if len(message) <= OUTPUT_LIMIT else "..." + message[-OUTPUT_LIMIT:]
    notifier.send(
        Event(
            "drill",
            f"[{run.site}] drill onto {run.target} FAILED at {step}",
            f"Drill #{run.id} of {run.site} onto {run.target} failed at step {step}:\n\n"
            f"{output}\n\n{cleanup}Nothing else changed: {run.source} is still the active "
            f"endpoint and DNS was not touched. A failover onto {run.target} would fail the same "
            f"way today; fix it and run `failover drill {run.site}` again "
            f"(`failover runs show {run.id}` has every step).",
            site=run.site,
            endpoint=run.target,
            level="failure",
        )
    )


def _cleanup(loaded: LoadedConfig, store: Store, run: Run, failed: str) -> str:
    """Run the cleanup step of a failed drill (journaled), unless it failed at preflight
    (nothing was done on the standby) or at the cleanup itself. Returns a sentence."""
    current = journal.get_run(store, run.id) or run
    step = next((s for s in current.steps if s["name"] == "cleanup"), None)
    if step is None or step["status"] != "pending" or failed in ("preflight", "cleanup"):
        return ""
    drill = loaded.config.sites[run.site].failover.drill
    commands = drill.cleanup if drill is not None else []
    journal.update_step(
        store, run.id, step["idx"], status="running", started=time.time(), attempts=1
    )
    try:
        run_commands(loaded, run.site, run.target, commands)
    except FailoverError as exc:
        text = str(exc).replace("\n", "; ")
        journal.update_step(
            store, run.id, step["idx"], status="failed", finished=time.time(), detail=text
        )
        return f"The cleanup failed too: {text}\n\n"
    detail = f"ran {len(commands)} cleanup command(s) on {run.target}"
    journal.update_step(
        store, run.id, step["idx"], status="done", finished=time.time(), detail=detail
    )
    return f"The cleanup ran ({len(commands)} command(s)).\n\n"


def _mark_not_reached(store: Store, run: Run, failed: str) -> None:
    current = journal.get_run(store, run.id) or run
    for s in current.steps:
        if s["status"] == "pending":
            journal.update_step(
                store, run.id, s["idx"], status="skipped", detail=f"not reached ({failed} failed)"
            )
