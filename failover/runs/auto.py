"""What the agent runs after every round for the runs: resume interrupted runs, retry
failed automatic ones, start a failover when `decide()` says so, alarm when there is no
healthy standby, fence an old primary that comes back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from failover.errors import FailoverError
from failover.logs import get_logger
from failover.notify import Event
from failover.runs import journal
from failover.runs.model import OPEN, Decision, Kind, Run
from failover.runs.plan import decide, plan_run, resume_command
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.models import Site
    from failover.hooks import HookContext
    from failover.store import Store

log = get_logger("runbook")

RETRY_BACKOFF = 30.0  # seconds between automatic retries of a failed run


def failover_hook(ctx: HookContext) -> None:
    """After each round: resume or retry runs, decide on failover, alarm, fence."""
    loaded, store = ctx.loaded, ctx.store
    journal.ensure_schema(store)
    result = ctx.result
    network_ok = result.network_ok if result is not None else _last_network_ok(store)
    now = time.time()
    for site_name, site in loaded.config.sites.items():
        existing = journal.open_run(store, site_name)
        # A manual run a person left failed must not keep the site down at 3 a.m.: it
        # gives way when the agent has to fail over (below); anything else is resumed.
        parked = (
            existing is not None
            and existing.trigger == "manual"
            and existing.status == "failed"
            and not existing.owner_alive
        )
        if existing is not None and not parked:
            _resume_if_due(ctx, existing, now)
            continue
        row = store.active_endpoint(site_name)
        active = row["active"] if row else site.initial_active
        health = {
            ep: HealthState.from_dict(store.health_state(site_name, ep)) for ep in site.endpoints
        }
        decision = decide(
            site,
            active,
            health,
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
            _resume_if_due(ctx, existing, now)  # only an outage overrides it: remind a person
        elif decision.action in ("failover", "failback") and decision.target:
            _start_auto(ctx, site_name, site, active, decision)
        if decision.action == "alarm":
            _alarm_no_standby(ctx, site_name, active, health, decision.reason)
        _fence_if_back(ctx, site_name, site, active, health)


def _last_network_ok(store: Store) -> bool:
    return store.get_meta("network_ok") != "0"


def _start_auto(
    ctx: HookContext, site_name: str, site: Site, active: str, decision: Decision
) -> None:
    kind: Kind = "failover" if decision.action == "failover" else "failback"
    assert decision.target is not None
    try:
        plan = plan_run(site_name, site, kind, active, decision.target)
        run = journal.start_run(ctx.store, plan, "auto")
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
    _spawn_execute(ctx, run)


def _spawn_execute(ctx: HookContext, run: Run) -> None:
    loaded, notifier = ctx.loaded, ctx.notifier

    def work(store: Store) -> None:
        fresh = journal.get_run(store, run.id)
        if fresh is not None and fresh.status in OPEN:
            from failover.runs import engine  # the steps and their SDKs: only for a run

            engine.execute(loaded, store, notifier, fresh)

    ctx.spawn(f"run-{run.site}", work)


def _resume_if_due(ctx: HookContext, run: Run, now: float) -> None:
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
        _spawn_execute(ctx, run)
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
        _spawn_execute(ctx, run)


def _notify_once(ctx: HookContext, key: str, event: Event) -> None:
    meta_key = f"notified:{key}"
    if ctx.store.get_meta(meta_key):
        return
    ctx.store.set_meta(meta_key, str(time.time()))
    ctx.notifier.send(event)


def _alarm_no_standby(
    ctx: HookContext, site_name: str, active: str, health: dict[str, HealthState], reason: str
) -> None:
    outage = health[active].outage_start or 0
    states = ", ".join(f"{ep} {st.status}" for ep, st in health.items() if ep != active)
    log.error(
        "NO HEALTHY STANDBY: %s (%s); not switching, still checking",
        reason,
        states,
        extra={"site": site_name},
    )
    _notify_once(
        ctx,
        f"no-standby:{site_name}:{outage:.0f}",
        Event(
            "failover",
            f"[{site_name}] {active} is down and there is NO HEALTHY STANDBY",
            f"{reason}: {states}. Nothing was switched; the agent keeps checking and fails over "
            "as soon as a standby passes its checks.",
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
