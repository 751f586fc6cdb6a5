"""Executing a run: its steps in order, each journaled before and after it runs, resuming
from the first unfinished step. Every step can be repeated safely, so a run killed at any
point (agent crash, reboot) completes once when it is executed again."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from failover.errors import FailoverError, LostLeadership, UsageError
from failover.logs import get_logger
from failover.notify import Event, Notifier
from failover.runs import journal
from failover.runs.catalog import failure_handler, step_impl
from failover.runs.model import Run, RunPlan, StepContext, done_status
from failover.runs.plan import plan_manual
from failover.scrub import describe_exception

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.store import Store

log = get_logger("runbook")

# Steps after which DNS already points at the target: a failure there must say so.
AFTER_SWITCH = ("activate", "verify_dns", "notify")
REFUSED = "refused"  # a run whose preflight failed: nothing was changed, the run is closed
REFUSAL_NOTICE_EVERY = 3600.0  # seconds: automatic runs refused again are only logged


class StepGuard(Protocol):
    """With a coordination group: `before` raises LostLeadership when this watcher may no
    longer act (renewing its lease first before an irreversible step); `after` records the
    run's progress as a group fact (and raises LostLeadership when another leader has)."""

    def before(self, run: Run, step: str) -> None: ...

    def after(self, run: Run) -> None: ...


def execute(
    loaded: LoadedConfig,
    store: Store,
    notifier: Notifier,
    run: Run,
    progress: Callable[[str], None] | None = None,
    guard: StepGuard | None = None,
) -> Run:
    """Run (or resume) `run` from its first unfinished step. Returns the run as it ended.

    A failing step marks the run failed, notifies, and stops; calling execute() again
    retries from that step."""
    try:
        return _execute(loaded, store, notifier, run, progress, guard)
    except LostLeadership as exc:
        # Not a failure of the run: the group's leader carries it on from here.
        journal.update_run(store, run.id, status="failed", detail=f"stopped: {exc}", owner=None)
        log.warning("run stopped: %s", exc, extra={"site": run.site, "run": str(run.id)})
        return journal.get_run(store, run.id) or run


def _execute(
    loaded: LoadedConfig,
    store: Store,
    notifier: Notifier,
    run: Run,
    progress: Callable[[str], None] | None,
    guard: StepGuard | None,
) -> Run:
    journal.ensure_schema(store)
    if run.site not in loaded.config.sites:
        raise UsageError(f"run #{run.id} is for site {run.site}, which the config no longer has")
    say = progress or (lambda _msg: None)
    extra = {"site": run.site, "run": str(run.id)}
    journal.update_run(
        store, run.id, status="running", attempts=run.attempts + 1, owner=os.getpid()
    )
    data: dict[str, Any] = {}
    for step in run.steps:
        data.update(step["data"] or {})
    for step in run.steps:
        if step["status"] in ("done", "skipped"):
            continue
        if journal.run_status(store, run.id) == "abandoned":
            # Given up on while it ran (a drill gives way to a real failover): stop here.
            log.warning("run #%d was abandoned: stopping", run.id, extra=extra)
            return journal.get_run(store, run.id) or run
        idx, name = step["idx"], step["name"]
        impl = step_impl(name)
        if guard is not None:
            guard.before(run, name)
        if data.get("endpoint") and run.target not in loaded.config.sites[run.site].endpoints:
            loaded = with_new_endpoint(loaded, run.site, run.target, data["endpoint"])
        journal.update_step(
            store,
            run.id,
            idx,
            status="running",
            started=time.time(),
            attempts=step["attempts"] + 1,
            detail=None,
        )
        say(f"[{name}] {step['title']} ...")
        log.info("step %s: %s", name, step["title"], extra={**extra, "step": name})
        ctx = StepContext(loaded, store, notifier, run, data, say)
        try:
            detail, out = impl(ctx)
        except KeyboardInterrupt:
            # A person stopped it: journal that, and leave it to them (the agent does not
            # resume a failed manual run on its own).
            _fail(loaded, store, notifier, run, idx, name, "interrupted (Ctrl-C)", extra, True)
            raise
        except FailoverError as exc:
            _fail(loaded, store, notifier, run, idx, name, str(exc), extra)
            return _after(store, run, guard)
        except Exception as exc:  # a bug or an unexpected SDK error: still journaled
            _fail(loaded, store, notifier, run, idx, name, describe_exception(exc), extra)
            return _after(store, run, guard)
        data.update(out)
        journal.update_step(
            store, run.id, idx, status="done", finished=time.time(), detail=detail, data=out
        )
        say(f"[{name}] done: {detail}")
        log.info("step %s done: %s", name, detail, extra={**extra, "step": name})
        if guard is not None:
            guard.after(journal.get_run(store, run.id) or run)
    if journal.close_run(store, run.id, done_status(run.kind), data.get("run_detail")):
        log.info("%s to %s complete", run.kind, run.target, extra=extra)
    else:
        log.warning("run #%d was abandoned while its last step ran", run.id, extra=extra)
    return _after(store, run, guard)


def _after(store: Store, run: Run, guard: StepGuard | None) -> Run:
    current = journal.get_run(store, run.id) or run
    if guard is not None:
        guard.after(current)
    return current


def _fail(
    loaded: LoadedConfig,
    store: Store,
    notifier: Notifier,
    run: Run,
    idx: int,
    name: str,
    raw: str,
    extra: dict[str, str],
    interrupted: bool = False,
) -> None:
    message = raw.replace("\n", "; ")
    journal.update_step(store, run.id, idx, status="failed", finished=time.time(), detail=message)
    handler = failure_handler(run.kind)
    if handler is not None:  # a drill: over, with its own notice
        handler(loaded, store, notifier, run, name, raw, interrupted)
        return
    if name == "preflight":
        _refuse(store, notifier, run, message, extra)
        return
    journal.update_run(store, run.id, status="failed", detail=f"{name}: {message}", owner=None)
    log.error("step %s failed: %s", name, message, extra={**extra, "step": name})
    notifier.send(
        Event(
            "failover",
            f"[{run.site}] {run.kind} to {run.target} FAILED at {name}",
            f"Run #{run.id} ({run.kind} of {run.site} from {run.source} to {run.target}) stopped "
            f"at step {name}: {message}. {where_things_stand(run, name)} "
            "The next attempt resumes at this step.",
            site=run.site,
            endpoint=run.target,
            level="failure",
        )
    )


def where_things_stand(run: Run, failed_at: str) -> str:
    """What is true after a run stopped at `failed_at`, in one sentence for a person."""
    if failed_at == "activate":
        return (
            f"DNS was switched to {run.target}; {run.source} is still recorded as the active "
            "endpoint until this step completes."
        )
    if failed_at in ("verify_dns", "notify"):
        pending = "verification is pending" if failed_at == "verify_dns" else "DNS was verified"
        return f"DNS was switched and {run.target} is the active endpoint; {pending}."
    if failed_at == "switch_dns":
        return (
            f"{run.source} is still the active endpoint; what DNS holds is in the step's "
            "detail (and `failover dns show`)."
        )
    return f"{run.source} is still the active endpoint and DNS is untouched."


def _refuse(
    store: Store, notifier: Notifier, run: Run, message: str, extra: dict[str, str]
) -> None:
    """Preflight failed: nothing was changed, so the run is closed (not left open to resume);
    an automatic one is tried again by the agent, and notified at most once an hour."""
    now = time.time()
    journal.update_run(
        store,
        run.id,
        status=REFUSED,
        finished=now,
        detail=f"preflight: {message} (nothing was changed)",
        owner=None,
    )
    log.error("refused at preflight: %s; nothing was changed", message, extra=extra)
    key = f"refused:{run.site}:{run.target}"
    last = float(store.get_meta(key) or 0)
    if run.trigger == "auto" and now - last < REFUSAL_NOTICE_EVERY:
        return
    store.set_meta(key, str(now))
    retry = (
        "The agent tries again while the outage lasts."
        if run.trigger == "auto"
        else f"Run `failover switch {run.site} --to {run.target} --dry-run` to check again."
    )
    notifier.send(
        Event(
            "failover",
            f"[{run.site}] {run.kind} to {run.target} refused at preflight",
            f"Run #{run.id} ({run.kind} of {run.site} from {run.source} to {run.target}) did not "
            f"start: {message}. Nothing was changed; {run.source} is still the active endpoint. "
            + retry,
            site=run.site,
            endpoint=run.target,
            level="failure",
        )
    )


def dry_run(
    loaded: LoadedConfig, store: Store, plan: RunPlan, options: dict[str, Any] | None = None
) -> tuple[bool, str]:
    """The read-only checks of a run (its preflight) without journaling a run: (would it
    start, what preflight found or why it would fail)."""
    steps = [
        {"idx": i, "name": s.name, "title": s.title, "status": "skipped" if s.skip else "pending"}
        for i, s in enumerate(plan.steps)
    ]
    run = Run(
        0, plan.site, plan.kind, "manual", plan.source, plan.target, "dry-run",
        time.time(), None, 0, dict(options or {}), None, steps,
    )  # fmt: skip
    ctx = StepContext(loaded, store, Notifier([]), run, {}, lambda _msg: None)
    try:
        detail, _ = step_impl("preflight")(ctx)
    except FailoverError as exc:
        return False, str(exc).replace("\n", "; ")
    return True, detail


def manual_plan(
    loaded: LoadedConfig, store: Store, site_name: str, target: str
) -> tuple[RunPlan, Run | None]:
    """The plan of `failover switch SITE --to TARGET`, and the open run it would resume."""
    if site_name not in loaded.config.sites:
        raise UsageError(
            f"no site {site_name!r} in {loaded.path} (sites: {', '.join(loaded.config.sites)})"
        )
    site = loaded.config.sites[site_name]
    current = journal.open_run(store, site_name)
    active = store.active_or(site_name, site.initial_active)
    return plan_manual(site_name, site, active, current, target), current


def with_new_endpoint(
    loaded: LoadedConfig, site_name: str, name: str, block: dict[str, Any]
) -> LoadedConfig:
    """A copy of the config whose site also has endpoint `name` (a server a migrate run
    created, not yet in the user's file), so that every step sees it like any other."""
    from failover.config.models import Endpoint

    config = loaded.config
    site = config.sites[site_name]
    endpoints = {**site.endpoints, name: Endpoint.model_validate(block)}
    new_site = site.model_copy(update={"endpoints": endpoints})
    new_config = config.model_copy(update={"sites": {**config.sites, site_name: new_site}})
    return dataclasses.replace(loaded, config=new_config)
