"""The steps every run has (see failover.runs). Each takes a StepContext and returns a one-line
detail plus data for later steps; each raises StepFailed (or another FailoverError) with
a message that says what failed and why. Every step is safe to repeat: a run resumed
after a crash runs its unfinished step again from the start.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError
from failover.humanize import duration
from failover.logs import get_logger
from failover.notify import Event
from failover.runs.model import StepContext, StepFailed, StepOut
from failover.runs.standby import probe_endpoint, probe_readiness

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig

log = get_logger("steps")

# --- helpers ------------------------------------------------------------------------------------


def canaries_ok(loaded: LoadedConfig) -> tuple[bool, str]:
    from failover.watch.health import network_ok
    from failover.watch.probes.engine import run_probes

    config = loaded.config
    if not config.canaries:
        return True, "no canaries configured"
    targets = [(i, c, c.host, c.host) for i, c in enumerate(config.canaries)]
    results = run_probes(targets)
    ordered = [results[i] for i in range(len(config.canaries))]
    ok = network_ok(config, ordered)
    return ok, f"{sum(r.ok for r in ordered)}/{len(ordered)} canaries pass"


def remote_for(loaded: LoadedConfig, site_name: str, endpoint: str) -> Any:
    from providers.remote import Remote

    ep = loaded.config.sites[site_name].endpoints[endpoint]
    if ep.ssh is None:
        raise StepFailed(f"{endpoint} has no ssh settings")
    return Remote(ep.ssh, ep.address, name=endpoint)


def run_commands(loaded: LoadedConfig, site_name: str, endpoint: str, commands: list[str]) -> None:
    """Run shell commands on an endpoint over SSH, in order; the first failure raises,
    naming the command, with the tail of its output (stdout and stderr)."""
    remote = remote_for(loaded, site_name, endpoint)
    timeout = loaded.config.sites[site_name].failover.command_timeout
    for command in commands:
        log.info("on %s: %s", endpoint, command, extra={"site": site_name, "endpoint": endpoint})
        result = remote.run(["/bin/sh", "-c", command], timeout=timeout, check=False)
        if result.returncode != 0:
            output = _output_tail(result.stdout + b"\n" + result.stderr)
            raise StepFailed(
                f"`{command}` exited with status {result.returncode} on {endpoint}"
                + (f":\n{output}" if output else " (no output)")
            )


def _output_tail(raw: bytes, lines: int = 20, limit: int = 2000) -> str:
    text = raw.decode(errors="replace")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)[-limit:]


# --- the steps -----------------------------------------------------------------------------------


def step_preflight(ctx: StepContext) -> StepOut:
    """Refuse to touch anything unless the move can succeed: the agent's network is fine,
    the target is ready (failover/runs/readiness.py: it passes the site's checks, or, to be
    restored first, answers over SSH and passes its standby checks), the snapshot to
    restore is fresh enough, and the DNS provider answers with values the tool put there.
    Reads only: it changes nothing (a dry run runs it too)."""
    loaded, run, site = ctx.loaded, ctx.run, ctx.site
    facts: list[str] = []
    out: dict[str, Any] = {}

    ok, detail = canaries_ok(loaded)
    if not ok:
        raise StepFailed(f"the agent's own network is down ({detail}): not switching")
    facts.append(detail)

    restoring = ctx.run.step_planned("restore")
    if run.target not in site.endpoints:
        facts.append(f"{run.target} is created by this run")
    else:
        # Ready: warm, it passes the site's checks; restored first (cold), it answers over
        # SSH and passes its standby checks (the recheck step requires the site's checks).
        readiness = probe_readiness(
            loaded, run.site, run.target, mode="cold" if restoring else "warm"
        )
        if not readiness.ready:
            raise StepFailed(f"{run.target} is not ready ({readiness.mode}): {readiness.reason}")
        facts.append(f"{run.target} {readiness.reason}")

    if restoring and not ctx.run.step_planned("final_backup"):
        from failover.backup.run import newest_snapshot

        snapshot = newest_snapshot(loaded, run.site)
        if snapshot is None:
            raise StepFailed("the repository holds no snapshot of the site to restore")
        age = time.time() - snapshot.time
        limit = site.failover.max_backup_age or (site.backup.max_age if site.backup else None)
        allow = site.failover.allow_stale_backup or run.options.get("allow_stale")
        if limit is not None and age > limit and not allow:
            raise StepFailed(
                f"the newest snapshot {snapshot.short_id} is {duration(age)} old, more than "
                f"{duration(limit)}: refusing to restore an old copy (allow_stale_backup or "
                "--allow-stale overrides)"
            )
        out["snapshot"] = snapshot.id
        out["snapshot_time"] = snapshot.time
        facts.append(f"snapshot {snapshot.short_id} is {duration(age)} old")

    if site.dns is not None:
        from failover.dns.apply import switch_site_dns

        if run.target in site.endpoints:
            result = switch_site_dns(
                loaded,
                run.site,
                run.target,
                None,
                apply=False,
                force=bool(run.options.get("force")),
            )
            changes = sum(1 for c in result.plan.records if c.changes)
            facts.append(f"DNS provider answers ({changes} record(s) to change)")
        else:  # the new server has no address yet: check the records are ours to change
            result = switch_site_dns(
                loaded,
                run.site,
                run.source,
                None,
                apply=False,
                force=bool(run.options.get("force")),
            )
            facts.append("DNS provider answers")
    return "; ".join(facts), out


def step_final_backup(ctx: StepContext) -> StepOut:
    """Back up the endpoint being left (it took writes): the snapshot restored next."""
    from failover.backup.run import run_backup

    snapshot = run_backup(
        ctx.loaded, ctx.store, ctx.run.site, source=ctx.run.source, progress=ctx.progress
    )
    return (
        f"snapshot {snapshot.short_id} of {ctx.run.source}",
        {"snapshot": snapshot.id, "snapshot_time": snapshot.time},
    )


def step_restore(ctx: StepContext) -> StepOut:
    """Restore the snapshot onto the target; the backed-up paths there end up equal to it
    (what the snapshot does not hold is removed, journaled in this step's detail first)."""
    from failover.backup.restore import restore_to_endpoint
    from failover.runs import journal

    snapshot = ctx.data.get("snapshot") or "latest"
    target = ctx.site.failover.restore_target
    idx = next(s["idx"] for s in ctx.run.steps if s["name"] == "restore")

    def journal_removal(paths: list[str]) -> None:
        journal.update_step(
            ctx.store, ctx.run.id, idx, detail=f"removing {removal_text(paths)} (in progress)"
        )

    result = restore_to_endpoint(
        ctx.loaded,
        ctx.run.site,
        ctx.run.target,
        snapshot=snapshot,
        target=target,
        progress=ctx.progress,
        on_remove=journal_removal,
    )
    short = snapshot[:8] if snapshot != "latest" else ", ".join(result.snapshots)
    detail = f"restored snapshot {short} onto {ctx.run.target}:{target}"
    if result.deletion == "restic --delete":
        detail += "; restic --delete removed what the snapshot does not hold"
    elif result.removed:
        detail += f"; removed {removal_text(result.removed)}"
    elif result.removed is not None:
        detail += "; nothing to remove: the restored paths equal the snapshot"
    return detail, {"removed": result.removed or []}


def removal_text(paths: list[str], shown: int = 20) -> str:
    listed = ", ".join(paths[:shown]) + (
        f" and {len(paths) - shown} more" if len(paths) > shown else ""
    )
    return f"{len(paths)} path(s) the snapshot does not hold: {listed}"


def step_after_restore(ctx: StepContext) -> StepOut:
    commands = ctx.site.failover.after_restore
    run_commands(ctx.loaded, ctx.run.site, ctx.run.target, commands)
    return f"ran {len(commands)} command(s) on {ctx.run.target}", {}


def step_recheck(ctx: StepContext) -> StepOut:
    deadline = time.monotonic() + ctx.site.failover.recheck_timeout
    interval = min(2.0, ctx.site.policy.interval)
    while True:
        results = probe_endpoint(ctx.loaded, ctx.run.site, ctx.run.target)
        failing = [f"{r.check}: {r.detail}" for r in results if not r.ok]
        if not failing:
            return f"{ctx.run.target} passes {len(results)} check(s)", {}
        if time.monotonic() >= deadline:
            raise StepFailed(
                f"{ctx.run.target} still fails the site's checks after "
                f"{ctx.site.failover.recheck_timeout:g}s: {'; '.join(failing)}"
            )
        time.sleep(interval)


SETTLE_PATIENCE = 300.0  # seconds a step waits for an unknown DNS outcome to become known
VERIFY_PATIENCE = 300.0  # seconds verify_dns keeps retrying before the step fails


def step_switch_dns(ctx: StepContext) -> StepOut:
    from failover.dns.apply import switch_site_dns

    try:
        result = switch_site_dns(
            ctx.loaded,
            ctx.run.site,
            ctx.run.target,
            ctx.store,
            apply=True,
            verify=False,
            force=bool(ctx.run.options.get("force")),
        )
    except FailoverError as exc:
        return _settle_unknown_switch(ctx, exc)
    applied = result.applied
    outcome = applied.outcome if applied else result.plan.verdict
    if outcome not in ("applied", "noop"):
        raise StepFailed(
            f"DNS change {outcome}: "
            + "; ".join(f"{k} {v}" for k, v in (applied.changes if applied else {}).items())
        )
    changed = [
        f"{c.key.name} {c.key.rtype} -> {','.join(c.new.values)}"
        for c in result.plan.records
        if c.changes
    ]
    return ("; ".join(changed) or "records already pointed at the target"), {
        "dns_switch_id": applied.switch_id if applied else None
    }


def _settle_unknown_switch(ctx: StepContext, exc: FailoverError) -> StepOut:
    """The DNS API failed in the middle of the change: it may have been applied. Say so, find
    out as soon as the provider (or every authoritative server) answers, and go on from what
    is true: applied -> the run continues (the standby becomes active); not applied -> the
    step fails with nothing changed."""
    from failover.dns.apply import outcome_of, settle_unknown

    outcome, switch_id = outcome_of(exc)
    plan = getattr(exc, "dns_plan", None)
    if outcome != "unknown" or switch_id is None or plan is None:
        raise exc
    run = ctx.run
    extra = {"site": run.site, "run": str(run.id), "step": "switch_dns"}
    log.warning("DNS may already point at %s; checking: %s", run.target, exc, extra=extra)
    ctx.notifier.send(
        Event(
            "failover",
            f"[{run.site}] DNS may already point at {run.target}; checking",
            f"Run #{run.id}: the DNS provider failed in the middle of the change ({exc}). The "
            "change may have been applied; the records are read back as soon as the provider "
            "(or every authoritative server) answers, and the run goes on from what they show.",
            site=run.site,
            endpoint=run.target,
            level="warning",
        )
    )
    settled = settle_unknown(
        ctx.loaded,
        run.site,
        ctx.store,
        switch_id,
        plan,
        patience=SETTLE_PATIENCE,
        on_wait=ctx.progress,
    )
    if settled.outcome != "applied":
        state = "was not applied" if settled.outcome == "failed" else "was partly applied"
        raise StepFailed(
            f"the DNS change {state} ({settled.how} after {settled.seconds:.1f}s); "
            f"{run.source} still serves the site"
        )
    changed = "; ".join(
        f"{r.key.name} {r.key.rtype} -> {','.join(r.new.values)}" for r in plan.pending
    )
    return (
        f"{changed} (the provider failed mid-change; applied: {settled.how} after "
        f"{settled.seconds:.1f}s)"
    ), {"dns_switch_id": switch_id, "dns_settled": time.time()}


def step_activate(ctx: StepContext) -> StepOut:
    ctx.store.set_active(ctx.run.site, ctx.run.target)
    # An endpoint made active again is watched (and alarmed about) like any other.
    ctx.store.delete_meta(f"fenced_endpoint:{ctx.run.site}:{ctx.run.target}")
    return f"{ctx.run.target} is the active endpoint", {"activated": time.time()}


def step_verify_dns(ctx: StepContext) -> StepOut:
    """Every authoritative server serves the target's values. Servers briefly unreachable
    (or slow to follow) are asked again on a short backoff (from 1 s, doubling, capped at
    2 s) for up to VERIFY_PATIENCE, so a blip ends in a completed run, not a failed one."""
    from failover.dns.apply import backoff
    from failover.dns.plan import endpoint_values
    from failover.dns.verify import find_nameservers, parse_servers, verify_dns
    from providers.dns.base import RecordKey, RecordSet

    site = ctx.site
    assert site.dns is not None
    expected = [
        RecordSet(
            RecordKey(site.dns.zone, r.name, r.type),
            endpoint_values(site, ctx.run.target, r.type),
            r.ttl,
        )
        for r in site.dns.records
    ]
    started = time.monotonic()
    servers = find_nameservers(site.dns.zone, site.dns.nameservers)
    delays = backoff()
    while True:
        report = verify_dns(
            expected, servers, site.dns.verify_deadline, resolvers=parse_servers(site.dns.resolvers)
        )
        if report.ok:
            break
        failing = "; ".join(
            f"{a.server} {a.name}: {a.error or ','.join(a.values or []) or '-'}"
            for a in report.failing
        )
        delay = next(delays)
        if time.monotonic() - started + delay > VERIFY_PATIENCE:
            raise StepFailed(
                "not every authoritative server serves the new values after "
                f"{time.monotonic() - started:.0f}s: {failing}"
            )
        ctx.progress(
            f"not every authoritative server serves {ctx.run.target} yet ({failing}); again in {delay:g}s"
        )
        log.info("verification pending: %s", failing, extra={"site": ctx.run.site})
        time.sleep(delay)
    return (
        f"{len(servers)} authoritative server(s) serve {ctx.run.target} "
        f"(after {time.monotonic() - started:.1f}s)"
    ), {"dns_verified": time.time()}


def step_notify(ctx: StepContext) -> StepOut:
    run, site = ctx.run, ctx.site
    lines = []
    for s in run.steps:
        if s["name"] == "notify":
            continue
        lines.append(
            f"- {s['name']}: {s['status'] if s['status'] == 'skipped' else 'done'}"
            + (f" ({s['detail']})" if s.get("detail") else "")
        )
    ctx.notifier.send(
        Event(
            "failover",
            f"[{run.site}] {run.kind} to {run.target} complete",
            f"{site.hostname} now points at {run.target} "
            f"({site.endpoints[run.target].address}); {run.source} is no longer active.\n"
            + "\n".join(lines),
            site=run.site,
            endpoint=run.target,
            level="success",
        )
    )
    return "notified", {}
