"""What the agent runs after every round for the runs: resume interrupted runs, retry
failed automatic ones, start a failover when `decide()` says so (onto the first *ready*
standby: failover/runs/readiness.py), alarm when no standby is ready, fence an old primary
that comes back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from failover.errors import FailoverError
from failover.logs import get_logger
from failover.maintenance import state as maintenance
from failover.notify import Event
from failover.runs import engine, journal
from failover.runs.drill_rules import gives_way
from failover.runs.engine import REFUSED
from failover.runs.model import OPEN, Decision, Kind, Run
from failover.runs.plan import decide, plan_run, resume_command
from failover.runs.readiness import Readiness
from failover.runs.standby import stored_readiness
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.models import Site
    from failover.coordination.session import Session
    from failover.hooks import HookContext
    from failover.store import Store

log = get_logger("runbook")

RETRY_BACKOFF = 30.0  # seconds between automatic retries of a failed run


def failover_hook(ctx: HookContext, group: Session | None = None) -> None:
    """After each round: resume or retry runs, decide on failover, alarm, fence.

    With a coordination `group`, only its leader acts, on the group's verdicts."""
    loaded, store = ctx.loaded, ctx.store
    journal.ensure_schema(store)
    if group is not None and not group.may_act():
        return
    result = ctx.result
    network_ok = result.network_ok if result is not None else _last_network_ok(store)
    now = time.time()
    for site_name, site in loaded.config.sites.items():
        existing = journal.open_run(store, site_name)
        if existing is not None and existing.kind == "drill":
            if not _drill_gives_way(ctx, existing, site):
                continue  # the drill hook looks after it (failover.runs.drill)
            existing = None
        # A manual run a person left failed must not keep the site down at 3 a.m.: it
        # gives way when the agent has to fail over (below); anything else is resumed.
        parked = (
            existing is not None
            and existing.trigger == "manual"
            and existing.status == "failed"
            and not existing.owner_alive
        )
        if existing is not None and not parked:
            _resume_if_due(ctx, existing, now, group)
            continue
        if maintenance.current(loaded.config, store, site_name, now) is not None:
            continue  # in maintenance: nothing fails over, fails back or alarms
        row = store.active_endpoint(site_name)
        active = row["active"] if row else site.initial_active
        health = (
            group.health(site_name)
            if group is not None
            else {
                ep: HealthState.from_dict(store.health_state(site_name, ep))
                for ep in site.endpoints
            }
        )
        ready = stored_readiness(store, site_name, site, active, now)
        decision = decide(
            site,
            active,
            health,
            ready=ready,
            network_ok=network_ok,
            now=now,
            last_switch=row["last_switch"] if row else None,
            open_run=False,
        )
        if existing is not None and decision.action == "failover":
            journal.abandon_run(
                store, existing.id, f"superseded by an automatic failover: {decision.reason}"
            )
            log.warning(
                "abandoned the failed manual run #%d (%s to %s) to fail over",
                existing.id,
                existing.kind,
                existing.target,
                extra={"site": site_name},
            )
            existing = None
        if existing is not None:
            _resume_if_due(ctx, existing, now, group)  # only an outage overrides: remind a person
        elif decision.action in ("failover", "failback") and decision.target:
            _start_auto(ctx, site_name, site, active, decision, group)
        if decision.action == "alarm":
            _alarm_no_standby(ctx, site_name, active, health, ready)
        _fence_if_back(ctx, site_name, site, active, health)


def _drill_gives_way(ctx: HookContext, run: Run, site: Site) -> bool:
    """A drill in progress is abandoned at once (journaled why) when the active endpoint
    goes down, so that the real failover starts now, without waiting for it: the drill
    notices and stops (failover.runs.drill)."""
    active = ctx.store.active_or(run.site, site.initial_active)
    state = HealthState.from_dict(ctx.store.health_state(run.site, active))
    if not gives_way(state.status):
        return False
    reason = f"{active} is {state.status}; the real failover takes precedence"
    if journal.abandon_run(ctx.store, run.id, reason):
        log.warning("drill #%d abandoned: %s", run.id, reason, extra={"site": run.site})
    return True


def _last_network_ok(store: Store) -> bool:
    return store.get_meta("network_ok") != "0"


def _start_auto(
    ctx: HookContext,
    site_name: str,
    site: Site,
    active: str,
    decision: Decision,
    group: Session | None = None,
) -> None:
    kind: Kind = "failover" if decision.action == "failover" else "failback"
    assert decision.target is not None
    previous = journal.last_run(ctx.store, site_name)
    again = (
        previous is not None
        and previous.status == REFUSED
        and (previous.kind, previous.target) == (kind, decision.target)
    )
    if again and previous is not None and time.time() - (previous.finished or 0) < RETRY_BACKOFF:
        return  # refused at preflight a moment ago: try again after the backoff
    try:
        plan = plan_run(site_name, site, kind, active, decision.target)
        options = {}
        if group is not None:
            uid = group.commit_start(ctx.store, site_name, plan, decision)
            if uid is None:
                return  # the group did not let it start (another run, or no lease)
            options["group_run"] = uid
        run = journal.start_run(ctx.store, plan, "auto", options)
    except FailoverError as exc:
        log.error("cannot start the %s: %s", kind, exc, extra={"site": site_name})
        return
    log.warning(
        "starting %s #%d to %s: %s",
        kind,
        run.id,
        decision.target,
        decision.reason,
        extra={"site": site_name},
    )
    if again:  # the owner was told when it started and when it was refused
        _spawn_execute(ctx, run)
        return
    ctx.notifier.send(
        Event(
            "failover",
            f"[{site_name}] {kind} to {decision.target} started",
            f"{decision.reason}. Run #{run.id} moves {site.hostname} from {active} to "
            f"{decision.target}:\n" + "\n".join(plan.lines()[1:]),
            site=site_name,
            endpoint=decision.target,
            level="warning",
        )
    )
    _spawn_execute(ctx, run, group)


def _spawn_execute(ctx: HookContext, run: Run, group: Session | None = None) -> None:
    loaded, notifier = ctx.loaded, ctx.notifier
    uid = run.options.get("group_run")
    guard = group.guard(run.site, uid) if group is not None and uid else None

    def work(store: Store) -> None:
        fresh = journal.get_run(store, run.id)
        if fresh is not None and fresh.status in OPEN:
            engine.execute(loaded, store, notifier, fresh, guard=guard)

    ctx.spawn(f"run-{run.site}", work)


def _resume_if_due(ctx: HookContext, run: Run, now: float, group: Session | None = None) -> None:
    max_attempts = (
        ctx.loaded.config.sites[run.site].failover.max_attempts
        if run.site in ctx.loaded.config.sites
        else 0
    )
    if run.owner_alive:
        return  # a manual `failover switch` is executing it right now
    if run.status == "running":
        # Interrupted (its process died), or executed by our own worker, which spawn()
        # does not start twice.
        _spawn_execute(ctx, run, group)
        return
    if run.trigger != "auto" or run.attempts >= max_attempts:
        _notify_once(
            ctx,
            f"gave-up:{run.id}",
            Event(
                "failover",
                f"[{run.site}] {run.kind} to {run.target} needs a person",
                f"Run #{run.id} failed {run.attempts} time(s) ({run.detail}). Retry with "
                f"`{resume_command(run)}`, or give up on it with "
                f"`failover runs abandon {run.id}`.",
                site=run.site,
                level="failure",
            ),
        )
        return
    failed_at = max((s["finished"] or 0) for s in run.steps)
    if now - failed_at >= RETRY_BACKOFF:
        log.info(
            "retrying run #%d (attempt %d of %d)",
            run.id,
            run.attempts + 1,
            max_attempts,
            extra={"site": run.site},
        )
        _spawn_execute(ctx, run, group)


def _notify_once(ctx: HookContext, key: str, event: Event) -> None:
    meta_key = f"notified:{key}"
    if ctx.store.get_meta(meta_key):
        return
    ctx.store.set_meta(meta_key, str(time.time()))
    ctx.notifier.send(event)


def _alarm_no_standby(
    ctx: HookContext,
    site_name: str,
    active: str,
    health: dict[str, HealthState],
    ready: dict[str, Readiness],
) -> None:
    outage = health[active].outage_start or 0
    states = "; ".join(r.line for r in ready.values()) or "no other endpoint configured"
    log.error(
        "NO STANDBY IS READY: %s is down (%s); not switching, still checking",
        active,
        states,
        extra={"site": site_name},
    )
    _notify_once(
        ctx,
        f"no-standby:{site_name}:{outage:.0f}",
        Event(
            "failover",
            f"[{site_name}] {active} is down and NO STANDBY IS READY",
            f"{active} is down and no standby is ready: {states}. Nothing was switched; the "
            "agent keeps checking and fails over as soon as a standby is ready.",
            site=site_name,
            level="failure",
        ),
    )


def _fence_if_back(
    ctx: HookContext, site_name: str, site: Site, active: str, health: dict[str, HealthState]
) -> None:
    """An old primary that answers again after a failover is fenced once (its fence
    commands run over SSH) and never made active on its own."""
    last = journal.last_done_run(ctx.store, site_name)
    if last is None or last.kind != "failover" or last.source == active:
        return
    old = last.source
    state = health.get(old, HealthState())
    if state.last_ts is None or state.streak_ok is not True or state.last_ts < last.created:
        return
    key = f"fenced:{last.id}"
    if ctx.store.get_meta(key):
        return
    ctx.store.set_meta(key, "pending")
    commands = site.failover.fence
    loaded, notifier, run_id = ctx.loaded, ctx.notifier, last.id

    def work(store: Store) -> None:
        outcome = "no fence commands configured"
        if commands:
            try:
                from failover.runs.steps.common import run_commands

                run_commands(loaded, site_name, old, commands)
                outcome = f"ran {len(commands)} fence command(s)"
            except FailoverError as exc:
                outcome = f"fencing FAILED: {exc}"
        store.set_meta(key, outcome)
        store.set_meta(f"fenced_endpoint:{site_name}:{old}", str(run_id))
        log.warning(
            "old primary %s answers again; %s",
            old,
            outcome,
            extra={"site": site_name, "endpoint": old},
        )
        notifier.send(
            Event(
                "failover",
                f"[{site_name}] old primary {old} is back (not made active)",
                f"{old} answers again after run #{run_id}; {outcome}. It serves the data from "
                f"before the failover; {active} stays active. Fail back when ready with "
                f"`failover switch {site_name} --to {old}` (it backs up {active} first).",
                site=site_name,
                endpoint=old,
                level="warning",
            )
        )

    ctx.spawn(f"fence-{site_name}", work)
