"""Drills: rehearsing a failover onto the standby without moving anything users see.

A drill is a journaled run of kind `drill` (plan: failover.runs.plan.plan_drill; its own
steps: failover.runs.steps.drill). It ends `passed` or `flunked`, or `abandoned` when the
active endpoint goes down meanwhile: the agent's failover hook then abandons it at once
and starts the real failover without waiting (failover.runs.auto); the drill notices the
abandonment in the journal (a watcher thread) and stops, interrupting a running restic.

- `drill_plan()` / `execute_drill()`: `failover drill SITE`, and the agent;
- `drill_hook()`: after each round, the scheduled drills that are due and free to run
  (failover.runs.drill_rules), and drills interrupted by a crash, resumed. Under the daemon
  a drill runs in a worker thread; under cron in a `failover drill` process of its own, so
  that the minute's `check` goes on probing meanwhile (and can abandon it);
- `status_section()`, `drill_report()`, `overdue_warnings()`: for status, report, validate.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError, UnsafePlan, UsageError
from failover.humanize import local_time
from failover.logs import get_logger
from failover.notify import Event
from failover.runs import engine, journal
from failover.runs.drill_rules import (
    compact,
    downtime_sentence,
    drill_blocker,
    drill_due,
    drill_target,
    gives_way,
    overdue,
    summarize,
    trend,
)
from failover.runs.model import DRILL_FLUNKED, DRILL_PASSED, Run, RunPlan, StepPlan
from failover.runs.plan import plan_drill
from failover.store import Store
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.models import Site
    from failover.hooks import HookContext
    from failover.notify import Notifier

log = get_logger("drill")

WATCH_POLL = 0.5  # seconds between looks at the journal for an abandonment
MAX_ATTEMPTS = 3  # a drill interrupted this often (crashes) is called failed
ENDED = (DRILL_PASSED, DRILL_FLUNKED)


# --- one drill ---------------------------------------------------------------------------------


def drill_plan(
    loaded: LoadedConfig, store: Store, site_name: str, to: str | None
) -> tuple[RunPlan, Run | None]:
    """The plan of `failover drill SITE [--to ENDPOINT]`, and the interrupted drill it would
    resume. Refused while the site has another open run or its active endpoint is down."""
    if site_name not in loaded.config.sites:
        raise UsageError(
            f"no site {site_name!r} in {loaded.path} (sites: {', '.join(loaded.config.sites)})"
        )
    site = loaded.config.sites[site_name]
    target = to or drill_target(site)
    if target is None:
        raise UsageError(f"site {site_name} has only one endpoint: nothing to drill onto")
    active = store.active_or(site_name, site.initial_active)
    current = journal.open_run(store, site_name)
    if current is not None and (current.kind != "drill" or current.target != target):
        raise UnsafePlan(
            f"site {site_name} has an open run #{current.id} ({current.kind} to "
            f"{current.target}, {current.status})",
            hint=f"finish it first (`failover runs show {current.id}`)",
        )
    state = HealthState.from_dict(store.health_state(site_name, active))
    if gives_way(state.status):
        raise UnsafePlan(
            f"the active endpoint {active} of {site_name} is {state.status}: this is an "
            "outage, not a time for a drill",
            hint=f"`failover switch {site_name} --to {target}` fails over",
        )
    if current is not None:
        steps = tuple(
            StepPlan(s["name"], s["title"], s["detail"] if s["status"] == "skipped" else None)
            for s in current.steps
        )
        return RunPlan(site_name, "drill", current.source, target, steps), current
    return plan_drill(site_name, site, active, target), None


def execute_drill(
    loaded: LoadedConfig,
    store: Store,
    notifier: Notifier,
    run: Run,
    progress: Callable[[str], None] | None = None,
) -> Run:
    """Execute (or resume) a drill; a watcher thread stops it (and a running restic) as soon
    as the journal says it was abandoned."""
    from failover.backup.restic import cancel_on

    cancel, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch_abandon,
        args=(store.path, run.id, cancel, stop),
        name=f"drill-{run.id}-watch",
        daemon=True,
    )
    watcher.start()
    try:
        with cancel_on(cancel):
            return engine.execute(loaded, store, notifier, run, progress)
    finally:
        stop.set()
        watcher.join(5)


def _watch_abandon(path: Any, run_id: int, cancel: threading.Event, stop: threading.Event) -> None:
    try:
        reader = Store.open(path, readonly=True)
    except FailoverError:
        return
    try:
        while not stop.wait(WATCH_POLL):
            if journal.run_status(reader, run_id) == "abandoned":
                cancel.set()
                return
    finally:
        reader.close()


# --- the schedule --------------------------------------------------------------------------------


def drill_hook(ctx: HookContext) -> None:
    """After each round: resume drills a crash interrupted, and start the scheduled drills
    that are due and free to run."""
    journal.ensure_schema(ctx.store)
    now = time.time()
    for site_name, site in ctx.loaded.config.sites.items():
        current = journal.open_run(ctx.store, site_name)
        if current is not None:
            if current.kind == "drill" and current.status == "running" and not current.owner_alive:
                _resume(ctx, current)
            continue
        drill = site.failover.drill
        if drill is not None and drill.every is not None:
            _maybe_start(ctx, site_name, site, now)


def _resume(ctx: HookContext, run: Run) -> None:
    if run.owner == os.getpid() and ctx.daemon:
        _launch(ctx, run)  # our own worker, if it still runs, is not started twice
        return
    if run.attempts >= MAX_ATTEMPTS:
        reason = f"interrupted {run.attempts} times; not resumed again"
        if journal.close_run(ctx.store, run.id, DRILL_FLUNKED, reason):
            ctx.notifier.send(
                Event(
                    "drill",
                    f"[{run.site}] drill onto {run.target} FAILED: {reason}",
                    f"Drill #{run.id} was interrupted {run.attempts} times (the agent stopped or "
                    "crashed while it ran). Nothing else changed. Run `failover drill "
                    f"{run.site}` to try again.",
                    site=run.site,
                    endpoint=run.target,
                    level="failure",
                )
            )
        return
    log.info("resuming the interrupted drill #%d", run.id, extra={"site": run.site})
    _launch(ctx, run)


def _maybe_start(ctx: HookContext, site_name: str, site: Site, now: float) -> None:
    store, drill = ctx.store, site.failover.drill
    assert drill is not None and drill.every is not None
    seen_key = f"drill_seen:{site_name}"
    first_seen = store.get_meta(seen_key)
    if first_seen is None:
        store.set_meta(seen_key, str(now))
        first_seen = str(now)
    last = journal.last_drill_start(store, site_name, ENDED)
    if not drill_due(drill.every, drill.at, last, float(first_seen), now):
        return
    row = store.active_endpoint(site_name)
    active = row["active"] if row else site.initial_active
    network_ok = ctx.result.network_ok if ctx.result is not None else _network_ok(store)
    blocker = drill_blocker(
        target=drill_target(site),
        active=active,
        active_status=HealthState.from_dict(store.health_state(site_name, active)).status,
        open_run=None,
        backup_busy=_backup_busy(ctx.loaded, store, site_name, now),
        network_ok=network_ok,
    )
    wait_key = f"drill_waits:{site_name}"
    if blocker is not None:
        if store.get_meta(wait_key) != blocker:  # said once per reason, not every round
            store.set_meta(wait_key, blocker)
            log.info("a drill is due but waits: %s", blocker, extra={"site": site_name})
        return
    store.delete_meta(wait_key)
    target = drill_target(site)
    assert target is not None
    try:
        run = journal.start_run(store, plan_drill(site_name, site, active, target), "schedule")
    except FailoverError as exc:
        log.error("cannot start the scheduled drill: %s", exc, extra={"site": site_name})
        return
    log.info("starting the scheduled drill #%d onto %s", run.id, target, extra={"site": site_name})
    _launch(ctx, run)


def _launch(ctx: HookContext, run: Run) -> None:
    """Under the daemon: a worker thread. Under cron: a `failover drill` process of its own
    (the `check` that started it ends; the next ones go on probing and may abandon it)."""
    loaded, notifier = ctx.loaded, ctx.notifier
    if ctx.daemon:

        def work(store: Store) -> None:
            fresh = journal.get_run(store, run.id)
            if fresh is not None and fresh.status == "running":
                execute_drill(loaded, store, notifier, fresh)

        ctx.spawn(f"drill-{run.site}", work)
        return
    argv = [sys.executable, "-m", "failover", "--config", str(loaded.path)]
    if not log.isEnabledFor(logging.INFO):  # the agent runs --quiet
        argv.append("--quiet")
    argv += ["drill", run.site, "--run", str(run.id)]
    # Its log goes beside the state (not into this check's output, which cron mails when
    # every holder of it is done): the journal and the notices say what the drill did.
    log_path = ctx.store.path.parent / "drill.log"
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("cannot start the drill process: %s", exc, extra={"site": run.site})
        return
    log.info("drill #%d runs in process %d (log: %s)", run.id, proc.pid, log_path)
    journal.update_run(ctx.store, run.id, owner=proc.pid)  # so that no later check resumes it


def _network_ok(store: Store) -> bool:
    return store.get_meta("network_ok") != "0"


def _backup_busy(loaded: LoadedConfig, store: Store, site_name: str, now: float) -> bool:
    """A backup of the site is due (about to start) or running."""
    bset = loaded.config.sites[site_name].backup
    if bset is None or not store.has_table("backup_runs"):
        return False
    from failover.backup import journal as backup_journal
    from failover.backup.schedule import work_due

    if "backup" in work_due(bset, backup_journal.load_state(store, site_name), now):
        return True
    return any(
        r["finished"] is None and r["started"] > now - bset.timeout
        for r in backup_journal.runs(store, site_name, kind="backup", limit=3)
    )


# --- what status, report and validate show -----------------------------------------------


def _overdue_text(site_name: str, every: float, last_pass: float | None) -> str:
    since = (
        "no drill has passed yet"
        if last_pass is None
        else (
            f"no drill passed in the last {compact(2 * every)} (the last one {local_time(last_pass)})"
        )
    )
    return f"{since}, with drill.every {compact(every)}: run `failover drill {site_name}`"


def status_section(loaded: LoadedConfig, store: Store | None, site_name: str) -> dict[str, Any]:
    """For `failover status`: the last drill's result, age and measured RTO, and a warning
    when no drill passed within 2 x every or the last one failed."""
    drill = loaded.config.sites[site_name].failover.drill
    has_runs = store is not None and journal.has_runs(store)
    items = journal.drills(store, site_name, 1) if store is not None and has_runs else []
    if not items and drill is None:
        return {}
    now = time.time()
    warnings: list[str] = []
    out: dict[str, Any] = {}
    if items:
        last = summarize(items[0])
        out["drill"] = {**last, "summary": _summary_line(last, now)}
        if last["result"] == "failed":
            warnings.append(
                f"the last drill (#{last['id']}) FAILED at {last['failed_step']}: "
                f"{last['output'] or items[0].detail}"
            )
    else:
        out["drill"] = {"result": None, "summary": "no drill yet"}
    if drill is not None and drill.every is not None:
        first_seen = store.get_meta(f"drill_seen:{site_name}") if store else None
        last_pass = (
            journal.last_drill_start(store, site_name, (DRILL_PASSED,))
            if store is not None and has_runs
            else None
        )
        if overdue(drill.every, last_pass, float(first_seen) if first_seen else None, now):
            warnings.append(_overdue_text(site_name, drill.every, last_pass))
    out["warnings"] = warnings
    return out


def _summary_line(last: dict[str, Any], now: float) -> str:
    age = compact(now - last["created"])
    head = f"last drill #{last['id']} onto {last['target']}"
    if last["result"] == "running":
        return f"drill #{last['id']} onto {last['target']} in progress"
    if last["result"] == "passed":
        rto = f"RTO {compact(last['rto'])}" if last["rto"] is not None else "RTO unknown"
        rpo = f", RPO {compact(last['rpo'])}" if last["rpo"] is not None else ""
        return f"{head} passed {age} ago: {rto}{rpo}"
    if last["result"] == "abandoned":
        return f"{head} abandoned {age} ago ({last['reason']})"
    return f"{head} FAILED {age} ago at {last['failed_step']}"


def drill_report(
    loaded: LoadedConfig, store: Store, site_name: str, since: float, target: float
) -> dict[str, Any]:
    """For `failover report`: the drills (oldest first) with RTO and RPO, the trends over the
    last passed ones, and what an outage costs with down_after and the last measured RTO."""
    site = loaded.config.sites[site_name]
    items = [summarize(r) for r in reversed(journal.drills(store, site_name, 200, since))]
    passed = [d for d in items if d["result"] == "passed" and d["rto"] is not None]
    out: dict[str, Any] = {
        "drills": items,
        "rto_trend": trend([d["rto"] for d in passed]),
        "rpo_trend": trend([d["rpo"] for d in passed if d["rpo"] is not None]),
        "last_rto": passed[-1]["rto"] if passed else None,
        "down_after": site.policy.down_after,
        "expected_outage": None,
        "statement": None,
    }
    if passed:
        out["expected_outage"] = site.policy.down_after + passed[-1]["rto"]
        out["statement"] = downtime_sentence(site.policy.down_after, passed[-1]["rto"], target)
    return out


def overdue_warnings(
    loaded: LoadedConfig, store: Store | None, now: float | None = None
) -> list[str]:
    """For `validate`: the sites with a drill schedule whose last passed drill is older than
    2 x every (or that never had one)."""
    now = time.time() if now is None else now
    out = []
    has_runs = store is not None and journal.has_runs(store)
    for site_name, site in loaded.config.sites.items():
        drill = site.failover.drill
        if drill is None or drill.every is None:
            continue
        last_pass = (
            journal.last_drill_start(store, site_name, (DRILL_PASSED,))
            if store is not None and has_runs
            else None
        )
        first = store.get_meta(f"drill_seen:{site_name}") if store is not None else None
        if overdue(drill.every, last_pass, float(first) if first else None, now):
            out.append(f"site {site_name}: {_overdue_text(site_name, drill.every, last_pass)}")
    return out
