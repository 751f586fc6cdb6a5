"""Planning runs and deciding to start one. Pure: the same facts give the same answer.

`plan_run()` says which steps moving a site from one endpoint to another takes and which
are skipped, and why; `decide()` says whether the agent should fail over (or back) now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from failover.errors import UnsafePlan, UsageError
from failover.runs.model import Decision, Kind, Run, RunPlan, StepPlan
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.models import Endpoint, Site
    from failover.runs.readiness import Readiness


def _need_ssh(ep_name: str, ep: Endpoint | None, what: str) -> str | None:
    if ep is not None and ep.ssh is None:
        return f"{ep_name} has no ssh settings, needed to {what}"
    return None


def _check_names(
    site_name: str, site: Site, source: str, target: str, provision: str | None
) -> None:
    if provision is None and target not in site.endpoints:
        raise UsageError(
            f"site {site_name} has no endpoint {target!r} (it has {', '.join(site.endpoints)})"
        )
    if provision is not None and target in site.endpoints:
        raise UsageError(
            f"site {site_name} already has an endpoint {target!r}: pick another "
            "name for the new server"
        )
    if source == target:
        raise UsageError(f"{target} is already the active endpoint of {site_name}")


def _final_backup_skip(
    site: Site, kind: Kind, source: str, carry_data: bool, cold: bool, warnings: list[str]
) -> str | None:
    if not carry_data:
        return (
            "the source is down; the newest snapshot is used"
            if kind == "failover"
            else "the source is unreachable; the newest snapshot is used"
        )
    if site.backup is None:
        return "the site has no backup set"
    if not cold:
        return "warm standby"
    if site.backup.source == "local":
        return None
    problem = _need_ssh(source, site.endpoints[source], "back it up")
    if problem:
        warnings.append(f"no final backup of {source}: {problem}")
    return problem


def _restore_skip(site_name: str, site: Site, target: str, cold: bool) -> str | None:
    if site.backup is None:
        return "the site has no backup set"
    if not cold:
        return "warm standby: kept current by other means"
    if problem := _need_ssh(target, site.endpoints.get(target), "restore onto it"):
        raise UsageError(f"site {site_name}: {problem}")
    return None


def plan_run(
    site_name: str,
    site: Site,
    kind: Kind,
    source: str,
    target: str,
    *,
    provision: str | None = None,
    source_reachable: bool = True,
) -> RunPlan:
    """The steps of moving `site_name` from `source` to `target`.

    provision: a compute template; the target is then a new server created by the run (it
    is not in the config yet). source_reachable=False (migrate off a dead server): no
    final backup, the newest snapshot is restored instead.
    """
    _check_names(site_name, site, source, target, provision)
    fo = site.failover
    cold = fo.standby == "cold" or provision is not None  # a new server is always cold
    # The source is alive: take its newest data along (failover: it is down, it cannot).
    carry_data = kind in ("failback", "switch", "migrate") and source_reachable
    target_ep = site.endpoints.get(target)
    warnings: list[str] = []
    backup_skip = _final_backup_skip(site, kind, source, carry_data, cold, warnings)
    restore_skip = _restore_skip(site_name, site, target, cold)

    after_skip = None if fo.after_restore else "no after_restore commands"
    if fo.after_restore and target_ep is not None and target_ep.ssh is None:
        raise UsageError(
            f"site {site_name}: {target} has no ssh settings, needed for after_restore commands"
        )
    dns_skip = None if site.dns is not None else "the site has no dns section"
    if dns_skip:
        where = target_ep.address if target_ep is not None else "the new server"
        warnings.append(
            f"DNS is not managed by the tool: point the site's name at {where} yourself"
        )

    ready = (
        "answers over SSH and passes its standby checks (the site's checks come after the restore)"
        if restore_skip is None
        else "passes the site's checks"
    )
    steps = [
        StepPlan(
            "preflight",
            f"preflight: {target} {ready}, canaries pass, backup fresh enough, "
            "DNS provider answers",
        ),
        StepPlan("final_backup", f"back up {source} (it took writes)", backup_skip),
    ]
    if kind == "migrate":
        no_new = None if provision else "the target server exists already"
        steps += [
            StepPlan(
                "provision",
                f"create server {target} from template {provision}"
                if provision
                else "create a server",
                no_new,
            ),
            StepPlan("wait_ssh", f"wait until {target} answers over SSH", no_new),
            StepPlan("ensure_restic", f"make sure restic is installed on {target}", restore_skip),
        ]
    steps += [
        StepPlan(
            "restore",
            f"restore the {'new' if carry_data else 'newest'} snapshot onto {target}",
            restore_skip,
        ),
        StepPlan(
            "after_restore",
            f"run {len(fo.after_restore)} after-restore command(s) on {target}",
            after_skip,
        ),
        StepPlan("recheck", f"check {target} with the site's checks"),
        StepPlan("switch_dns", f"point the DNS records at {target}", dns_skip),
        StepPlan("activate", f"record {target} as the active endpoint"),
        StepPlan("verify_dns", f"verify every authoritative nameserver serves {target}", dns_skip),
        StepPlan("notify", "tell the owner"),
    ]
    return RunPlan(site_name, kind, source, target, tuple(steps), tuple(warnings))


def decide(
    site: Site,
    active: str,
    health: Mapping[str, HealthState],
    *,
    ready: Mapping[str, Readiness],
    network_ok: bool,
    now: float,
    last_switch: float | None,
    open_run: bool,
) -> Decision:
    """Whether to switch `site` now. `ready`: each standby's readiness (readiness.assess):
    a failover goes to the first ready one in the configured order."""
    policy = site.policy
    if open_run:
        return Decision("none", reason="a run is already open for the site")
    if not network_ok:
        return Decision("none", reason="the agent's own network is down")
    cooling = last_switch is not None and now - last_switch < policy.cooldown
    active_state = health.get(active, HealthState())
    home = site.initial_active
    if active_state.is_down and _down_while_active(active_state, last_switch, policy.down_after):
        if not policy.auto_failover:
            return Decision("none", reason=f"{active} is down; auto_failover is off")
        if cooling:
            return Decision("none", reason="cooldown since the last switch")
        candidates = [
            name
            for name in site.endpoints
            if name != active and name in ready and ready[name].ready
        ]
        if not candidates:
            why = "; ".join(r.line for name, r in ready.items() if name != active)
            return Decision(
                "alarm",
                reason=f"{active} is down and no standby is ready" + (f": {why}" if why else ""),
            )
        # The configured order of endpoints is the order of preference.
        chosen = ready[candidates[0]]
        return Decision(
            "failover", chosen.endpoint, f"{active} is {active_state.status}; {chosen.line}"
        )
    if (
        policy.auto_failback
        and active != home
        and not cooling
        and health.get(home, HealthState()).status == "up"
        and active_state.is_up
    ):
        return Decision("failback", home, f"{home} has been up for up_after")
    return Decision("none")


def _down_while_active(state: HealthState, last_switch: float | None, down_after: float) -> bool:
    """A cold standby made active was `down` by the site's checks until it was restored (and
    is `recovering` for up_after after): that verdict is from before it became active, and it
    passed the recheck step since. It counts as down only once it has failed continuously
    for down_after while active."""
    if last_switch is None or state.outage_start is None or state.outage_start >= last_switch:
        return True  # an outage of its time as the active endpoint
    if state.streak_ok is not False or state.streak_start is None or state.last_ts is None:
        return False
    return state.last_ts - max(state.streak_start, last_switch) >= down_after


def plan_manual(
    site_name: str, site: Site, active: str, current: Run | None, target: str
) -> RunPlan:
    """The plan of `failover switch SITE --to TARGET`: the open run's own steps when it
    resumes one (it must go to the same target), else a new failback or switch."""
    if current is not None:
        if current.kind == "drill":
            raise UnsafePlan(
                f"site {site_name} has a drill running (#{current.id} onto {current.target})",
                hint=f"wait for it, or `failover runs abandon {current.id}`",
            )
        if current.target != target:
            raise UnsafePlan(
                f"site {site_name} has an open run #{current.id} ({current.kind} to "
                f"{current.target}, {current.status})",
                hint=f"finish it with `failover switch {site_name} --to {current.target}`, "
                f"or `failover runs abandon {current.id}`",
            )
        steps = tuple(
            StepPlan(s["name"], s["title"], s["detail"] if s["status"] == "skipped" else None)
            for s in current.steps
        )
        return RunPlan(site_name, current.kind, current.source, current.target, steps)
    kind: Kind = "failback" if target == site.initial_active else "switch"
    return plan_run(site_name, site, kind, active, target)


def plan_drill(site_name: str, site: Site, active: str, target: str) -> RunPlan:
    """The steps of rehearsing a failover of `site_name` onto `target`: what a failover does
    up to "the standby passes the site's checks", then cleanup and the measurements; no
    final backup (a failover has none), no DNS, no change of the active endpoint."""
    if target not in site.endpoints:
        raise UsageError(
            f"site {site_name} has no endpoint {target!r} (it has {', '.join(site.endpoints)})"
        )
    if target == active:
        raise UsageError(
            f"{target} is the active endpoint of {site_name}: a drill onto it would restore "
            "over the live site (drill onto a standby)"
        )
    fo = site.failover
    cold = fo.standby == "cold"
    target_ep = site.endpoints[target]
    restore_skip = _restore_skip(site_name, site, target, cold)
    verify_skip = _verify_current_skip(site_name, site, target, cold)
    cleanup = fo.drill.cleanup if fo.drill is not None else []
    for what, commands in (("after_restore", fo.after_restore), ("drill cleanup", cleanup)):
        if commands and target_ep.ssh is None:
            raise UsageError(
                f"site {site_name}: {target} has no ssh settings, needed for {what} commands"
            )
    notify = fo.drill is not None and fo.drill.notify_on_pass
    steps = (
        StepPlan(
            "preflight",
            f"preflight as for a failover: canaries pass, {target} ready, backup fresh "
            "enough, DNS provider answers (nothing is changed)",
        ),
        StepPlan("restore", f"restore the newest snapshot onto {target}", restore_skip),
        StepPlan(
            "verify_current",
            f"check that {target} (a warm standby) holds the newest snapshot (a sample of files)",
            verify_skip,
        ),
        StepPlan(
            "after_restore",
            f"run {len(fo.after_restore)} after-restore command(s) on {target}",
            None if fo.after_restore else "no after_restore commands",
        ),
        StepPlan("recheck", f"check {target} with the site's checks (the RTO ends here)"),
        StepPlan(
            "cleanup",
            f"run {len(cleanup)} cleanup command(s) on {target}"
            if cleanup
            else f"clean up {target}",
            None if cleanup else "no cleanup commands (drill.cleanup)",
        ),
        StepPlan("drill_result", "record RTO and RPO" + (" and notify" if notify else "")),
    )
    return RunPlan(site_name, "drill", active, target, steps)


def _verify_current_skip(site_name: str, site: Site, target: str, cold: bool) -> str | None:
    if cold:
        return "cold standby: the newest snapshot is restored instead"
    if site.backup is None:
        return "the site has no backup set to compare with"
    if not site.backup.paths:
        return "the backup set holds database dumps only: no files to compare"
    if problem := _need_ssh(target, site.endpoints[target], "compare its files"):
        raise UsageError(f"site {site_name}: {problem}")
    return None


def resumed_options(options: dict[str, Any], **flags: bool) -> dict[str, Any]:
    """A resumed run keeps the options it was started with; a flag given now adds to them
    (`--force` on the second attempt), never takes one away."""
    merged = dict(options)
    for name, value in flags.items():
        merged[name] = bool(value or options.get(name, False))
    return merged


def resume_command(run: Run) -> str:
    """The command a person runs to resume `run`."""
    if run.kind == "drill":
        return f"failover drill {run.site} --to {run.target}"
    if run.kind == "migrate":
        template = run.options.get("template")
        how = f"--provision {template} --name {run.target}" if template else f"--to {run.target}"
        return f"failover migrate {run.site} {how} --yes"
    return f"failover switch {run.site} --to {run.target} --yes"
