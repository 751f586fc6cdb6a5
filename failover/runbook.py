"""Failover, failback and migrate as journaled runs of ordered steps.

- `plan_run()` is pure: which steps a switch of one site from one endpoint to another
  takes, and which are skipped and why. `decide()` is pure too: given the health of the
  endpoints, the policy and the facts of the moment, whether to fail over (or back) now.
- `start_run()` journals a run and its steps in the state before anything is done; a site
  never has two open runs (a unique index says so). `execute()` runs the steps in order,
  recording each one's start, end, outcome and details, and resumes a run from its first
  unfinished step: every step can be repeated safely, so a run killed at any point (agent
  crash, reboot) completes once when the agent starts again.
- `failover_hook()` is what the agent runs after every round: resume interrupted runs,
  retry failed automatic ones, start a failover when `decide()` says so, alarm when there
  is no healthy standby, fence an old primary that comes back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from failover.errors import FailoverError, UnsafePlan, UsageError
from failover.health import HealthState
from failover.humanize import local_time
from failover.logs import get_logger
from failover.notify import Event, Notifier

if TYPE_CHECKING:
    from failover.agent import HookContext
    from failover.config import LoadedConfig
    from failover.config.models import Site
    from failover.store import Store

log = get_logger("runbook")

RUNBOOK_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,          -- failover, failback, switch, migrate
    trigger TEXT NOT NULL,       -- auto or manual
    source TEXT NOT NULL,        -- the endpoint active when the run began
    target TEXT NOT NULL,
    status TEXT NOT NULL,        -- running, failed, done, abandoned
    created REAL NOT NULL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL,       -- JSON: force, allow_stale, ...
    detail TEXT,
    owner INTEGER                -- pid of the process executing it (NULL: nobody)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_run_per_site ON runs(site)
    WHERE status IN ('running', 'failed');
CREATE INDEX IF NOT EXISTS runs_by_site ON runs(site, created);
CREATE TABLE IF NOT EXISTS run_steps (
    run_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,        -- pending, running, done, failed, skipped
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    data TEXT,                   -- JSON handed to later steps (snapshot id, ...)
    PRIMARY KEY (run_id, idx)
);
"""

Kind = Literal["failover", "failback", "switch", "migrate"]
OPEN = ("running", "failed")


# --- planning (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class StepPlan:
    name: str
    title: str
    skip: str | None = None  # why the step does nothing in this run


@dataclass(frozen=True)
class RunPlan:
    site: str
    kind: Kind
    source: str
    target: str
    steps: tuple[StepPlan, ...]
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"{self.kind} of site {self.site}: {self.source} -> {self.target}"]
        for i, step in enumerate(self.steps, 1):
            suffix = f"  (skipped: {step.skip})" if step.skip else ""
            out.append(f"  {i}. {step.title}{suffix}")
        out += [f"  ! {w}" for w in self.warnings]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "kind": self.kind,
            "source": self.source,
            "target": self.target,
            "warnings": list(self.warnings),
            "steps": [{"name": s.name, "title": s.title, "skip": s.skip} for s in self.steps],
        }


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
    """The steps of moving `site_name` from `source` to `target`. Pure.

    provision: a compute template; the target is then a new server created by the run (it
    is not in the config yet). source_reachable=False (migrate off a dead server): no
    final backup, the newest snapshot is restored instead.
    """
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
    fo = site.failover
    has_backup = site.backup is not None
    cold = fo.standby == "cold" or provision is not None  # a new server is always cold
    # The source is alive: take its newest data along (failover: it is down, it cannot).
    carry_data = kind in ("failback", "switch", "migrate") and source_reachable
    target_ep = site.endpoints.get(target)
    source_ep = site.endpoints[source]
    warnings: list[str] = []

    def need_ssh(ep_name: str, ep: Any, what: str) -> str | None:
        if ep is not None and ep.ssh is None:
            return f"{ep_name} has no ssh settings, needed to {what}"
        return None

    backup_skip = None
    if not carry_data:
        backup_skip = (
            "the source is down; the newest snapshot is used"
            if kind == "failover"
            else "the source is unreachable; the newest snapshot is used"
        )
    elif not has_backup:
        backup_skip = "the site has no backup set"
    elif not cold:
        backup_skip = "warm standby"
    elif site.backup is not None and site.backup.source == "local":
        backup_skip = None
    elif need_ssh(source, source_ep, "back it up"):
        backup_skip = need_ssh(source, source_ep, "back it up")
        warnings.append(f"no final backup of {source}: {backup_skip}")

    restore_skip = None
    if not has_backup:
        restore_skip = "the site has no backup set"
    elif not cold:
        restore_skip = "warm standby: kept current by other means"
    elif problem := need_ssh(target, target_ep, "restore onto it"):
        raise UsageError(f"site {site_name}: {problem}")

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

    steps = [
        StepPlan(
            "preflight",
            f"preflight: {target} passes the site's checks, canaries pass, "
            "backup fresh enough, DNS provider answers",
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


@dataclass(frozen=True)
class Decision:
    action: Literal["none", "failover", "failback", "alarm"]
    target: str | None = None
    reason: str = ""


def decide(
    site: Site,
    active: str,
    health: dict[str, HealthState],
    *,
    network_ok: bool,
    now: float,
    last_switch: float | None,
    open_run: bool,
) -> Decision:
    """Whether to switch `site` now. Pure: the same facts give the same decision."""
    policy = site.policy
    if open_run:
        return Decision("none", reason="a run is already open for the site")
    if not network_ok:
        return Decision("none", reason="the agent's own network is down")
    cooling = last_switch is not None and now - last_switch < policy.cooldown
    active_state = health.get(active, HealthState())
    home = site.initial_active
    if active_state.is_down:
        if not policy.auto_failover:
            return Decision("none", reason=f"{active} is down; auto_failover is off")
        if cooling:
            return Decision("none", reason="cooldown since the last switch")
        healthy = [
            name
            for name in site.endpoints
            if name != active and health.get(name, HealthState()).status == "up"
        ]
        if not healthy:
            return Decision("alarm", reason=f"{active} is down and no standby is healthy")
        # The configured order of endpoints is the order of preference.
        return Decision("failover", healthy[0], f"{active} is {active_state.status}")
    if (
        policy.auto_failback
        and active != home
        and not cooling
        and health.get(home, HealthState()).status == "up"
        and active_state.is_up
    ):
        return Decision("failback", home, f"{home} has been up for up_after")
    return Decision("none")


# --- journal --------------------------------------------------------------------------------


@dataclass
class Run:
    id: int
    site: str
    kind: Kind
    trigger: str
    source: str
    target: str
    status: str
    created: float
    finished: float | None
    attempts: int
    options: dict[str, Any]
    detail: str | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    owner: int | None = None

    @property
    def owner_alive(self) -> bool:
        """Another live process is executing this run (a manual `switch` while the agent
        runs, say): leave it alone."""
        if self.owner is None or self.owner == os.getpid():
            return False
        try:
            os.kill(self.owner, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "id",
                "site",
                "kind",
                "trigger",
                "source",
                "target",
                "status",
                "created",
                "finished",
                "attempts",
                "options",
                "detail",
                "steps",
            )
        }


def ensure_schema(store: Store) -> None:
    if getattr(store, "_runbook_schema", False) or store.readonly:
        return
    store.ensure_schema(RUNBOOK_SCHEMA)
    store._runbook_schema = True  # type: ignore[attr-defined]


def start_run(
    store: Store,
    plan: RunPlan,
    trigger: str,
    options: dict[str, Any] | None = None,
    now: float | None = None,
) -> Run:
    """Journal a new run and its steps. Raises UnsafePlan when the site has an open run."""
    import sqlite3

    ensure_schema(store)
    now = now or time.time()
    try:
        with store.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs(site, kind, trigger, source, target, status, created, options,"
                " owner) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    plan.site,
                    plan.kind,
                    trigger,
                    plan.source,
                    plan.target,
                    "running",
                    now,
                    json.dumps(options or {}),
                    os.getpid(),
                ),
            )
            run_id = int(cur.lastrowid or 0)
            c.executemany(
                "INSERT INTO run_steps(run_id, idx, name, title, status, detail)"
                " VALUES (?,?,?,?,?,?)",
                [
                    (run_id, i, s.name, s.title, "skipped" if s.skip else "pending", s.skip)
                    for i, s in enumerate(plan.steps)
                ],
            )
    except sqlite3.IntegrityError:
        existing = open_run(store, plan.site)
        raise UnsafePlan(
            f"site {plan.site} already has an open run"
            + (
                f" (#{existing.id}: {existing.kind} to {existing.target}, {existing.status})"
                if existing
                else ""
            ),
            hint=(
                f"resume it with `{resume_command(existing)}`, or "
                f"`failover runs abandon {existing.id}`"
            )
            if existing
            else None,
        ) from None
    run = get_run(store, run_id)
    assert run is not None
    return run


def get_run(store: Store, run_id: int) -> Run | None:
    ensure_schema(store)
    row = store.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    if row is None:
        return None
    steps = [
        dict(r)
        for r in store.conn.execute(
            "SELECT * FROM run_steps WHERE run_id=? ORDER BY idx", (run_id,)
        )
    ]
    for step in steps:
        step["data"] = json.loads(step["data"]) if step["data"] else {}
    return Run(
        row["id"],
        row["site"],
        row["kind"],
        row["trigger"],
        row["source"],
        row["target"],
        row["status"],
        row["created"],
        row["finished"],
        row["attempts"],
        json.loads(row["options"]),
        row["detail"],
        steps,
        row["owner"],
    )


def open_run(store: Store, site: str) -> Run | None:
    ensure_schema(store)
    row = store.conn.execute(
        "SELECT id FROM runs WHERE site=? AND status IN ('running','failed')", (site,)
    ).fetchone()
    return get_run(store, row[0]) if row else None


def runs(store: Store, site: str | None = None, since: float = 0.0) -> list[Run]:
    ensure_schema(store)
    query = "SELECT id FROM runs WHERE created >= ?"
    args: list[Any] = [since]
    if site:
        query += " AND site=?"
        args.append(site)
    return [
        r
        for (rid,) in store.conn.execute(query + " ORDER BY created", args)
        if (r := get_run(store, rid)) is not None
    ]


def resume_command(run: Run) -> str:
    """The command a person runs to resume `run`."""
    if run.kind == "migrate":
        template = run.options.get("template")
        how = f"--provision {template} --name {run.target}" if template else f"--to {run.target}"
        return f"failover migrate {run.site} {how} --yes"
    return f"failover switch {run.site} --to {run.target} --yes"


def set_options(store: Store, run_id: int, options: dict[str, Any]) -> None:
    _run_update(store, run_id, options=json.dumps(options))


def abandon_run(store: Store, run_id: int, reason: str) -> None:
    with store.transaction() as c:
        c.execute(
            "UPDATE runs SET status='abandoned', finished=?, detail=? WHERE id=?",
            (time.time(), reason, run_id),
        )


def _step_update(store: Store, run_id: int, idx: int, **fields: Any) -> None:
    if "data" in fields:
        fields["data"] = json.dumps(fields["data"])
    sets = ", ".join(f"{k}=?" for k in fields)
    with store.transaction() as c:
        c.execute(
            f"UPDATE run_steps SET {sets} WHERE run_id=? AND idx=?", (*fields.values(), run_id, idx)
        )


def _run_update(store: Store, run_id: int, **fields: Any) -> None:
    sets = ", ".join(f"{k}=?" for k in fields)
    with store.transaction() as c:
        c.execute(f"UPDATE runs SET {sets} WHERE id=?", (*fields.values(), run_id))


# --- executing ------------------------------------------------------------------------------


class StepFailed(FailoverError):
    """A step could not do its work; the message says what and why."""


@dataclass
class StepContext:
    loaded: LoadedConfig
    store: Store
    notifier: Notifier
    run: Run
    data: dict[str, Any]  # what earlier steps handed on
    progress: Callable[[str], None]

    @property
    def site(self) -> Site:
        return self.loaded.config.sites[self.run.site]


StepFn = Callable[[StepContext], tuple[str, dict[str, Any]]]
STEPS: dict[str, StepFn] = {}


def step(name: str) -> Callable[[StepFn], StepFn]:
    """Register the implementation of a step (steps.py, migrate.py)."""

    def register(fn: StepFn) -> StepFn:
        STEPS[name] = fn
        return fn

    return register


def _step_impl(name: str) -> StepFn:
    import importlib

    if name not in STEPS:
        importlib.import_module("failover.steps")  # registers the common steps
    if name not in STEPS:
        importlib.import_module("failover.migrate")  # provision, wait_ssh, ensure_restic
    try:
        return STEPS[name]
    except KeyError:
        raise UsageError(f"no implementation of step {name!r}") from None


def with_new_endpoint(
    loaded: LoadedConfig, site_name: str, name: str, block: dict[str, Any]
) -> LoadedConfig:
    """A copy of the config whose site also has endpoint `name` (a server a migrate run
    created, not yet in the user's file), so that every step sees it like any other."""
    import dataclasses

    from failover.config.models import Endpoint

    config = loaded.config
    site = config.sites[site_name]
    endpoints = {**site.endpoints, name: Endpoint.model_validate(block)}
    new_site = site.model_copy(update={"endpoints": endpoints})
    new_config = config.model_copy(update={"sites": {**config.sites, site_name: new_site}})
    return dataclasses.replace(loaded, config=new_config)


def execute(
    loaded: LoadedConfig,
    store: Store,
    notifier: Notifier,
    run: Run,
    progress: Callable[[str], None] | None = None,
) -> Run:
    """Run (or resume) `run` from its first unfinished step. Returns the run as it ended.

    A failing step marks the run failed, notifies, and stops; calling execute() again
    retries from that step."""
    ensure_schema(store)
    if run.site not in loaded.config.sites:
        raise UsageError(f"run #{run.id} is for site {run.site}, which the config no longer has")
    say = progress or (lambda _msg: None)
    extra = {"site": run.site, "run": str(run.id)}
    _run_update(store, run.id, status="running", attempts=run.attempts + 1, owner=os.getpid())
    data: dict[str, Any] = {}
    for step in run.steps:
        data.update(step["data"] or {})
    for step in run.steps:
        if step["status"] in ("done", "skipped"):
            continue
        idx, name = step["idx"], step["name"]
        impl = _step_impl(name)
        if data.get("endpoint") and run.target not in loaded.config.sites[run.site].endpoints:
            loaded = with_new_endpoint(loaded, run.site, run.target, data["endpoint"])
        started = time.time()
        _step_update(
            store,
            run.id,
            idx,
            status="running",
            started=started,
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
            _fail(store, notifier, run, idx, name, "interrupted (Ctrl-C)", extra)
            raise
        except FailoverError as exc:
            _fail(store, notifier, run, idx, name, str(exc), extra)
            return get_run(store, run.id) or run
        except Exception as exc:  # a bug or an unexpected SDK error: still journaled
            _fail(store, notifier, run, idx, name, f"{exc.__class__.__name__}: {exc}", extra)
            return get_run(store, run.id) or run
        data.update(out)
        _step_update(
            store, run.id, idx, status="done", finished=time.time(), detail=detail, data=out
        )
        say(f"[{name}] done: {detail}")
        log.info("step %s done: %s", name, detail, extra={**extra, "step": name})
    _run_update(store, run.id, status="done", finished=time.time(), detail=None, owner=None)
    log.info("%s to %s complete", run.kind, run.target, extra=extra)
    return get_run(store, run.id) or run


def _fail(
    store: Store,
    notifier: Notifier,
    run: Run,
    idx: int,
    name: str,
    message: str,
    extra: dict[str, str],
) -> None:
    message = message.replace("\n", "; ")
    _step_update(store, run.id, idx, status="failed", finished=time.time(), detail=message)
    _run_update(store, run.id, status="failed", detail=f"{name}: {message}", owner=None)
    log.error("step %s failed: %s", name, message, extra={**extra, "step": name})
    notifier.send(
        Event(
            "failover",
            f"[{run.site}] {run.kind} to {run.target} FAILED at {name}",
            f"Run #{run.id} ({run.kind} of {run.site} from {run.source} to {run.target}) stopped "
            f"at step {name}: {message}. {run.source} is still the active endpoint"
            + (
                " (DNS was already switched)"
                if name in ("activate", "verify_dns", "notify")
                else ""
            )
            + ". The next attempt resumes at this step.",
            site=run.site,
            endpoint=run.target,
            level="failure",
        )
    )


# --- the agent's hook -------------------------------------------------------------------------

RETRY_BACKOFF = 30.0  # seconds between automatic retries of a failed run


def failover_hook(ctx: HookContext) -> None:
    """After each round: resume or retry runs, decide on failover, alarm, fence."""
    loaded, store = ctx.loaded, ctx.store
    ensure_schema(store)
    result = ctx.result
    network_ok = result.network_ok if result is not None else _last_network_ok(store)
    now = time.time()
    for site_name, site in loaded.config.sites.items():
        existing = open_run(store, site_name)
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
            abandon_run(
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
        run = start_run(ctx.store, plan, "auto")
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
        fresh = get_run(store, run.id)
        if fresh is not None and fresh.status in OPEN:
            execute(loaded, store, notifier, fresh)

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
    last = _last_done_run(ctx.store, site_name)
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
        from failover.steps import run_commands

        outcome = "no fence commands configured"
        if commands:
            try:
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


def _last_done_run(store: Store, site: str) -> Run | None:
    row = store.conn.execute(
        "SELECT id FROM runs WHERE site=? AND status='done' ORDER BY finished DESC LIMIT 1", (site,)
    ).fetchone()
    return get_run(store, row[0]) if row else None


def status_section(loaded: LoadedConfig, store: Store | None, site_name: str) -> dict[str, Any]:
    """For `failover status`: the open or last run, and the old-primary warning."""
    if store is None or not store.has_table("runs"):
        return {}
    warnings: list[str] = []
    current = open_run(store, site_name)
    last = _last_done_run(store, site_name)
    out: dict[str, Any] = {}
    if current is not None:
        failed = [s for s in current.steps if s["status"] == "failed"]
        state = (
            f"FAILED at {failed[0]['name']}: {failed[0]['detail']}"
            if failed
            else "in progress (or interrupted; resumes when the agent runs)"
        )
        out["run"] = {
            **current.to_dict(),
            "summary": f"run #{current.id} {current.kind} to {current.target}: {state}",
        }
        warnings.append(f"run #{current.id} ({current.kind} to {current.target}) is open: {state}")
    elif last is not None:
        out["run"] = {
            **last.to_dict(),
            "summary": f"last run #{last.id}: {last.kind} {last.source} -> "
            f"{last.target}, done {local_time(last.finished)}",
        }
    row = store.active_endpoint(site_name)
    site = loaded.config.sites[site_name]
    if row and row["active"] not in site.endpoints:
        warnings.append(
            f"the active endpoint {row['active']} is not in the config, so it is not watched: "
            f"add its block to sites.{site_name}.endpoints (`failover migrate` printed it; "
            "--write-config adds it)"
        )
    if last is not None and last.kind == "failover" and row and row["active"] != last.source:
        st = HealthState.from_dict(store.health_state(site_name, last.source))
        fenced = store.get_meta(f"fenced:{last.id}")
        if st.streak_ok or fenced:
            warnings.append(
                f"{last.source} came back but serves the data from before the failover at "
                f"{local_time(last.created)}; it is not active"
                + (f" ({fenced})" if fenced else "")
                + f". Fail back with `failover switch {site_name} --to {last.source}`"
            )
    out["warnings"] = warnings
    return out


def plan_manual(
    loaded: LoadedConfig, store: Store, site_name: str, target: str
) -> tuple[RunPlan, Run | None]:
    """The plan of `failover switch SITE --to TARGET`, and the open run it would resume."""
    if site_name not in loaded.config.sites:
        raise UsageError(
            f"no site {site_name!r} in {loaded.path} (sites: {', '.join(loaded.config.sites)})"
        )
    site = loaded.config.sites[site_name]
    current = open_run(store, site_name)
    if current is not None:
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
        return RunPlan(site_name, current.kind, current.source, current.target, steps), current
    row = store.active_endpoint(site_name)
    active = row["active"] if row else site.initial_active
    kind: Kind = "failback" if target == site.initial_active else "switch"
    return plan_run(site_name, site, kind, active, target), None


def describe_steps(run: Run) -> Sequence[str]:
    out = []
    for s in run.steps:
        took = ""
        if s["started"] and s["finished"]:
            took = f" ({s['finished'] - s['started']:.1f}s)"
        out.append(f"  {s['status']:<8} {s['name']}{took}: {s['detail'] or s['title']}")
    return out
