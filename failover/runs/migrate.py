"""`failover migrate`: a one-shot move of a site onto another server, one the user has
(`--to ENDPOINT`) or a new one created from a compute template (`--provision TEMPLATE`).

A migrate is a journaled run like a failover (failover.runs): the common steps (preflight,
final backup, restore, after-restore commands, recheck, DNS switch, activate, verify,
notify) plus three of its own (runs/steps/migrate.py: provision, wait_ssh, ensure_restic).

The DNS records change late (switch_dns comes after the restore and the checks of the new
server), so a failure before that leaves the old server active and DNS untouched.
`on_failure()` deletes a server this run created when asked (`--destroy-on-failure`), and
otherwise says what was left running. The user's config file is changed only on request
(`--write-config`, through config.edit, comments kept).

This module is imported by the CLI only when `migrate` runs; SDKs are imported inside the
functions.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.config.base import NAME_PATTERN
from failover.errors import FailoverError, UnsafePlan, UsageError
from failover.humanize import duration, local_time
from failover.logs import get_logger
from failover.runs import compute, journal
from failover.runs.model import RunPlan, StepPlan
from failover.runs.plan import plan_run

if TYPE_CHECKING:
    from collections.abc import Callable

    from failover.config.load import LoadedConfig
    from failover.runs.model import Run
    from failover.store import Store

log = get_logger("migrate")

_ENDPOINT_NAME = re.compile(NAME_PATTERN)

# --- planning ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MigratePlan(RunPlan):
    """A run plan plus what only a migrate shows: the server to create, whether the source
    answers now, and (when it does not) the snapshot that would be restored."""

    source_reachable: bool = True
    source_detail: str = ""
    snapshot: dict[str, Any] | None = None
    server: dict[str, Any] | None = None

    @property
    def needs_confirmation(self) -> bool:
        """Applying restores an older snapshot (the source is unreachable): --from-snapshot."""
        return not self.source_reachable

    def lines(self) -> list[str]:
        out = super().lines()
        extra: list[str] = []
        if self.server is not None:
            s = self.server
            extra.append(
                f"  new server: {s['name']}, size {s['size']}, image {s['image']}"
                + (f", at {s['location']}" if s.get("location") else "")
                + f", {s['address']} address, from compute template {s['template']} "
                f"(driver {s['driver']})"
            )
        if not self.source_reachable:
            extra.append(f"  source {self.source} is unreachable: {self.source_detail}")
        return out[:1] + extra + out[1:]

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "source_reachable": self.source_reachable,
            "source_detail": self.source_detail,
            "snapshot": self.snapshot,
            "server": self.server,
        }


def plan_migrate(
    loaded: LoadedConfig,
    store: Store,
    site_name: str,
    *,
    to: str | None = None,
    provision: str | None = None,
    name: str | None = None,
) -> tuple[MigratePlan, Run | None]:
    """The plan of `failover migrate SITE --to ENDPOINT | --provision TEMPLATE [--name N]`,
    and the open run it would resume (None: a new run). Looks at the source now: when it
    does not answer, the plan restores the newest snapshot (and says how old it is)."""
    if site_name not in loaded.config.sites:
        raise UsageError(
            f"no site {site_name!r} in {loaded.path} (sites: {', '.join(loaded.config.sites)})"
        )
    if (to is None) == (provision is None):
        raise UsageError(
            "say where to move: --to ENDPOINT (a server of the site's) or "
            "--provision TEMPLATE (a new server from a compute template)"
        )
    if name is not None and provision is None:
        raise UsageError("--name names the new server's endpoint: it goes with --provision")
    site = loaded.config.sites[site_name]
    server = _server_summary(loaded, site_name, provision) if provision else None
    target = to or name or provision
    assert target is not None
    if not _ENDPOINT_NAME.match(target):
        raise UsageError(
            f"{target!r} cannot name an endpoint: letters, digits, '.', '_', '-'"
            + ("; give the new server a name with --name" if name is None else "")
        )
    journal.ensure_schema(store)

    current = journal.open_run(store, site_name)
    if current is not None:
        same = (
            current.kind == "migrate"
            and current.target == target
            and current.options.get("template") == provision
        )
        if not same:
            raise UnsafePlan(
                f"site {site_name} has an open run #{current.id} ({current.kind} to "
                f"{current.target}, {current.status})",
                hint=(
                    f"finish it with `{_command(site_name, current)}`, "
                    if current.kind == "migrate"
                    else "finish it first, "
                )
                + f"or give up on it with `failover runs abandon {current.id}`",
            )
        steps = tuple(
            StepPlan(s["name"], s["title"], s["detail"] if s["status"] == "skipped" else None)
            for s in current.steps
        )
        return MigratePlan(
            site_name, "migrate", current.source, current.target, steps, server=server
        ), current

    row = store.active_endpoint(site_name)
    active = row["active"] if row else site.initial_active
    if active not in site.endpoints:
        raise UsageError(
            f"the active endpoint of {site_name} is {active}, which is not in {loaded.path}",
            hint=f"add its block first: `failover migrate {site_name} --write-config` "
            "adds the one the last migrate printed",
        )
    if to is not None and to not in site.endpoints:
        raise UsageError(
            f"site {site_name} has no endpoint {to!r} (it has {', '.join(site.endpoints)})"
        )
    reachable, detail = check_source(loaded, site_name, active)
    plan = plan_run(
        site_name, site, "migrate", active, target, provision=provision, source_reachable=reachable
    )
    warnings = list(plan.warnings)
    snapshot: dict[str, Any] | None = None
    restoring = any(s.name == "restore" and s.skip is None for s in plan.steps)
    if not reachable and restoring:
        snapshot, note = _newest_snapshot(loaded, site_name)
        warnings.append(note)
    elif not reachable:
        warnings.append(f"{active} does not answer ({detail}); nothing is restored")
    base = {f.name: getattr(plan, f.name) for f in dataclasses.fields(RunPlan)}
    base["warnings"] = tuple(warnings)
    return MigratePlan(
        **base,
        source_reachable=reachable or not restoring,
        source_detail=detail,
        snapshot=snapshot,
        server=server,
    ), None


def check_source(loaded: LoadedConfig, site_name: str, endpoint: str) -> tuple[bool, str]:
    """Whether the endpoint being left answers now, so that a final backup can be taken:
    a login over SSH when it has ssh settings, otherwise the site's checks."""
    from failover.runs.steps.common import probe_endpoint
    from providers.remote import Remote

    ep = loaded.config.sites[site_name].endpoints[endpoint]
    if ep.ssh is not None:
        wait = 5.0  # or the endpoint's own ConnectTimeout, if shorter
        for option in ep.ssh.options:
            key, _, value = option.partition("=")
            if key.strip().lower() == "connecttimeout" and value.strip().isdigit():
                wait = max(1.0, min(wait, float(value)))
        try:
            Remote(ep.ssh, ep.address, name=endpoint, connect_timeout=wait).run(
                ["true"], timeout=20
            )
        except FailoverError as exc:
            return False, str(exc)
        return True, "answers over SSH"
    results = probe_endpoint(loaded, site_name, endpoint)
    failing = [f"{r.check}: {r.detail}" for r in results if not r.ok]
    if failing:
        return False, "; ".join(failing)
    return True, f"passes {len(results)} check(s)"


def _newest_snapshot(loaded: LoadedConfig, site_name: str) -> tuple[dict[str, Any] | None, str]:
    from failover.backup.run import newest_snapshot

    try:
        snap = newest_snapshot(loaded, site_name)
    except FailoverError as exc:
        return None, f"the newest snapshot cannot be listed: {exc}"
    if snap is None:
        return None, "the repository holds no snapshot of the site: there is nothing to restore"
    age = time.time() - snap.time
    when = local_time(snap.time)
    info = {"id": snap.id, "short_id": snap.short_id, "time": snap.time, "age": age}
    return info, (
        f"no final backup: the newest snapshot {snap.short_id} from {when} "
        f"({duration(age)} old) is restored; writes after it are lost "
        "(apply with --from-snapshot to confirm)"
    )


def _server_summary(loaded: LoadedConfig, site_name: str, template_name: str) -> dict[str, Any]:
    template = compute.template_for(loaded, template_name)
    return {
        "template": template_name,
        "name": template.node_name(site_name),
        "driver": template.driver,
        "size": template.size,
        "image": template.image,
        "location": template.location,
        "address": template.address,
    }


def _command(site_name: str, run: Run) -> str:
    template = run.options.get("template")
    if template:
        name = "" if run.target == template else f" --name {run.target}"
        return f"failover migrate {site_name} --provision {template}{name} --yes"
    return f"failover migrate {site_name} --to {run.target} --yes"


def start_or_resume(
    store: Store, plan: MigratePlan, existing: Run | None, options: dict[str, Any]
) -> Run:
    """A new run for the plan, or the open one it resumes (which keeps its own options;
    only --destroy-on-failure may change between attempts). Refuses to restore an older
    snapshot without --from-snapshot."""
    if existing is None:
        if plan.needs_confirmation and not options.get("from_snapshot"):
            raise UnsafePlan(
                f"{plan.source} does not answer, so there is no final backup: the newest "
                "snapshot would be restored (its age is in the plan above)",
                hint="add --from-snapshot to confirm",
            )
        return journal.start_run(store, plan, "manual", options)
    destroy = bool(options.get("destroy_on_failure"))
    if destroy != bool(existing.options.get("destroy_on_failure")):
        existing.options["destroy_on_failure"] = destroy
        journal.set_options(store, existing.id, existing.options)
    return existing


def failure_message(run: Run, left: list[str]) -> str:
    failed = next((s for s in run.steps if s["status"] == "failed"), None)
    where = f" at {failed['name']}" if failed else ""
    detail = (failed["detail"] if failed else run.detail) or "failed"
    closed = any("is closed" in line for line in left)
    again = "" if closed else " (run the same command again to resume it)"
    return f"migrate run #{run.id} stopped{where}: {detail}{again}"


# --- after the run ---------------------------------------------------------------------------


def created_server(run: Run) -> dict[str, Any] | None:
    """The server this run created (id, name, template, address), if any."""
    data: dict[str, Any] = {}
    for s in run.steps:
        if s["name"] == "provision":
            data = s.get("data") or {}
    node_id = data.get("node_id") or run.options.get("node_id")
    if not node_id:
        return None
    endpoint = data.get("endpoint") or {}
    return {
        "id": node_id,
        "name": data.get("node_name") or run.options.get("node_name"),
        "template": data.get("template") or run.options.get("template"),
        "address": endpoint.get("address"),
    }


def on_failure(
    loaded: LoadedConfig,
    store: Store,
    run: Run,
    *,
    destroy: bool,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """What a failed migrate left behind, as lines for the user; with `destroy`, delete the
    server the run created (only while DNS does not point at it yet) and close the run."""
    say = progress or (lambda _m: None)
    failed = next((s for s in run.steps if s["status"] == "failed"), None)
    at = failed["name"] if failed else "?"
    status = {s["name"]: s["status"] for s in run.steps}
    # A switch that failed half way may have changed some records: count it as switched.
    switched = status.get("switch_dns") in ("done", "failed", "running")
    activated = status.get("activate") == "done"
    lines: list[str] = []
    if status.get("switch_dns") == "done":
        lines.append(
            f"DNS already points at {run.target}"
            + ("" if activated else f"; {run.source} is still recorded as active")
        )
    elif switched:
        lines.append(
            f"the DNS change to {run.target} failed and may be partly applied: "
            f"`failover dns show` says what the records hold; {run.source} is still "
            "recorded as active"
        )
    else:
        lines.append(f"{run.source} is still the active endpoint; DNS was not changed")
    server = created_server(run)
    template = run.options.get("template")
    if server is None:
        if template:
            lines.append("no server was created by this run")
            if destroy:
                lines += _destroy_found(loaded, run, template, say)
        return lines
    what = (
        f"server {server['name'] or ''} ({server['id']}"
        + (f", {server['address']}" if server["address"] else "")
        + ")"
    ).replace("  ", " ")
    if destroy and switched:
        lines.append(f"{what} is kept: DNS may point at it already")
        return lines
    if destroy:
        try:
            deleted = compute.destroy(
                loaded, str(server["template"] or template), str(server["id"]), say
            )
        except FailoverError as exc:
            lines.append(
                f"could not delete {what}: {exc}; it is still running and billed: "
                "delete it in the provider's console"
            )
            return lines
        journal.abandon_run(store, run.id, f"{at} failed; {what} deleted (--destroy-on-failure)")
        lines.append(f"deleted {what}" if deleted else f"{what} was already gone")
        lines.append(f"run #{run.id} is closed: the next migrate starts afresh")
        return lines
    lines.append(
        f"{what}, created by this run, is still running (and billed): run the same "
        "command again to resume with it, add --destroy-on-failure to delete it "
        "when the run fails, or delete it in the provider's console"
    )
    return lines


def _destroy_found(
    loaded: LoadedConfig, run: Run, template: str, say: Callable[[str], None]
) -> list[str]:
    """A create whose answer was lost leaves a server that no id names: look for it by the
    run's key (tag) and delete it."""
    key = run.options.get("idempotency_key")
    if not key:
        return []
    try:
        tpl = compute.template_for(loaded, template)
        with compute.provider_for_template(loaded, template) as provider:
            found = provider.find_nodes(tpl.node_name(run.site), key)
        for node in found:
            compute.destroy(loaded, template, node.id, say)
    except FailoverError as exc:
        return [f"could not look for a server of this run: {exc}"]
    return [f"deleted server {n.describe()}" for n in found]


def new_endpoint(run: Run) -> dict[str, Any] | None:
    """The endpoint block of the server a done migrate created (None for --to)."""
    for s in run.steps:
        if s["name"] == "provision" and s["status"] == "done":
            block = (s.get("data") or {}).get("endpoint")
            return dict(block) if block else None
    return None


def pending_endpoint(
    loaded: LoadedConfig, store: Store, site_name: str
) -> tuple[str, dict[str, Any]] | None:
    """The active endpoint when it is a server a migrate created that the config file does
    not have yet: (name, block)."""
    if site_name not in loaded.config.sites or not journal.has_runs(store):
        return None
    row = store.active_endpoint(site_name)
    if row is None or row["active"] in loaded.config.sites[site_name].endpoints:
        return None
    for run in reversed(journal.runs(store, site_name)):
        if run.kind == "migrate" and run.status == "done" and run.target == row["active"]:
            block = new_endpoint(run)
            if block:
                return run.target, block
    return None


def config_block(name: str, block: dict[str, Any]) -> str:
    """The endpoint block as the text to put under sites.SITE.endpoints."""
    from failover.config.edit import render_block

    return render_block(name, block)


def write_endpoint(loaded: LoadedConfig, site_name: str, name: str, block: dict[str, Any]) -> None:
    """Add the block to the user's config file (comments and layout kept)."""
    from failover.config.edit import add_endpoint

    add_endpoint(loaded.path, site_name, name, block)


__all__ = [
    "MigratePlan",
    "check_source",
    "config_block",
    "created_server",
    "new_endpoint",
    "on_failure",
    "pending_endpoint",
    "plan_migrate",
    "write_endpoint",
]
