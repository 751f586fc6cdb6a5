"""The watch loop: probe rounds, health, evidence, notifications.

`tick()` is one round for cron (`failover check`); `Agent` runs rounds on a schedule as a
daemon (`failover agent`). Both go through `run_round()`, so a daemon and cron runs keep
the same evidence and reach the same verdicts.

A round probes the canaries and every endpoint of the sites concurrently. When fewer
canaries pass than `canary_min_ok`, the agent's own network is down: the round is stored
as inconclusive and counts neither as up nor down for any site.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from failover.config import LoadedConfig
from failover.config.models import Config
from failover.health import Change, HealthState, step
from failover.logs import get_logger
from failover.notify import Event, Notifier
from failover.store import Store, Transition
from failover.watch.probes.engine import run_probes
from failover.watch.probes.result import ProbeResult

log = get_logger("agent")

CANARY = ""  # the `site` column of canary probes


@dataclass
class EndpointOutcome:
    site: str
    endpoint: str
    results: list[ProbeResult]
    observation: bool | None  # None: inconclusive round
    before: HealthState
    after: HealthState
    change: Change | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def failure_detail(self) -> str:
        failed = [f"{r.check}: {r.detail}" for r in self.results if not r.ok]
        return "; ".join(failed) or "all checks passed"


@dataclass
class RoundResult:
    ts: float
    duration: float
    network_ok: bool
    canaries: list[ProbeResult]
    outcomes: list[EndpointOutcome] = field(default_factory=list)

    @property
    def changes(self) -> list[EndpointOutcome]:
        return [o for o in self.outcomes if o.change is not None]


# --- one round ---------------------------------------------------------------------------


def probe_round(
    config: Config, sites: Iterable[str] | None = None
) -> tuple[float, float, list[ProbeResult], dict[tuple[str, str], list[ProbeResult]]]:
    """Probe the canaries and every endpoint of `sites` (all by default), concurrently."""
    names = list(sites) if sites is not None else list(config.sites)
    targets: list[tuple[Any, Any, str, str | None]] = []
    for i, canary in enumerate(config.canaries):
        host = canary.host or ""
        targets.append((("", f"canary{i}"), canary, host, host))
    for site_name in names:
        site = config.sites[site_name]
        for ep_name, endpoint in site.endpoints.items():
            for j, check in enumerate(site.checks):
                targets.append(((site_name, ep_name, j), check, endpoint.address, site.hostname))
    started = time.time()
    t0 = time.monotonic()
    results = run_probes(targets)
    duration = time.monotonic() - t0
    canaries = [results[("", f"canary{i}")] for i in range(len(config.canaries))]
    per_endpoint: dict[tuple[str, str], list[ProbeResult]] = {}
    for site_name in names:
        site = config.sites[site_name]
        for ep_name in site.endpoints:
            per_endpoint[(site_name, ep_name)] = [
                results[(site_name, ep_name, j)] for j in range(len(site.checks))
            ]
    return started, duration, canaries, per_endpoint


def network_is_ok(config: Config, canaries: list[ProbeResult]) -> bool:
    if not config.canaries:
        return True
    return sum(r.ok for r in canaries) >= config.canary_min_ok


def run_round(
    config: Config,
    store: Store,
    notifier: Notifier,
    sites: Iterable[str] | None = None,
    lock: threading.Lock | None = None,
) -> RoundResult:
    """Probe, fold into health, keep the evidence, notify. Never raises for a probe.

    The probing runs without `lock`; recording the results runs under it."""
    probed = probe_round(config, sites)
    with lock or contextlib.nullcontext():
        return record_round(config, store, notifier, *probed)


def record_round(
    config: Config,
    store: Store,
    notifier: Notifier,
    ts: float,
    duration: float,
    canaries: list[ProbeResult],
    per_endpoint: dict[tuple[str, str], list[ProbeResult]],
) -> RoundResult:
    network_ok = network_is_ok(config, canaries)
    result = RoundResult(ts=ts, duration=duration, network_ok=network_ok, canaries=canaries)

    previous_warnings = _previous_warnings(store, per_endpoint)
    probes = [_probe_row(ts, CANARY, f"canary{i}", r) for i, r in enumerate(canaries)]
    for (site, ep), results in per_endpoint.items():
        probes += [_probe_row(ts, site, ep, r) for r in results]
    store.add_round(
        ts,
        duration,
        network_ok,
        sum(r.ok for r in canaries),
        len(canaries),
        probes,
        detail=None if network_ok else _canary_detail(config, canaries),
    )
    _track_network(store, notifier, network_ok, ts, config, canaries)

    for (site_name, ep_name), results in per_endpoint.items():
        policy = config.sites[site_name].policy
        ok = all(r.ok for r in results)
        observation = ok if network_ok else None
        before = HealthState.from_dict(store.health_state(site_name, ep_name))
        after, change = step(before, ts, observation, policy)
        outcome = EndpointOutcome(site_name, ep_name, results, observation, before, after, change)
        transition = None
        if change is not None:
            transition = Transition(
                ts,
                site_name,
                ep_name,
                change.from_status,
                change.to_status,
                _reason(change, outcome),
            )
        store.record_observation(
            site_name,
            ep_name,
            ts,
            observation,
            after.to_dict(),
            transition,
            change.incident if change else None,
            incident_start=after.outage_start or before.outage_start,
        )
        result.outcomes.append(outcome)
        _log_outcome(outcome)
        if change is not None:
            fenced = store.get_meta(f"fenced_endpoint:{site_name}:{ep_name}")
            if fenced is None:
                _notify_change(notifier, config, outcome)
            else:  # an old primary fenced on purpose after a failover: no alarms about it
                log.info(
                    "not notifying: %s was fenced after run #%s",
                    ep_name,
                    fenced,
                    extra={"site": site_name, "endpoint": ep_name},
                )
        for r in results:
            if r.warning and previous_warnings.get((site_name, ep_name, r.check)) != r.warning:
                log.warning(
                    "%s: %s",
                    r.check,
                    r.warning,
                    extra={"site": site_name, "endpoint": ep_name, "check": r.check},
                )
                notifier.send(
                    Event(
                        "warning",
                        f"[{site_name}] {ep_name}: {r.warning}",
                        f"Check {r.check} on {ep_name} of {site_name}: {r.warning}",
                        site=site_name,
                        endpoint=ep_name,
                    )
                )
    log.debug(
        "round done in %.2fs: %d endpoint(s), network %s",
        duration,
        len(result.outcomes),
        "ok" if network_ok else "DOWN",
    )
    return result


def _probe_row(ts: float, site: str, endpoint: str, r: ProbeResult) -> dict[str, Any]:
    return {
        "ts": ts,
        "site": site,
        "endpoint": endpoint,
        "check": r.check,
        "ok": r.ok,
        "latency_ms": r.latency_ms,
        "detail": r.detail,
        "warning": r.warning,
    }


def _previous_warnings(
    store: Store, per_endpoint: dict[tuple[str, str], Any]
) -> dict[tuple[str, str, str], str | None]:
    out: dict[tuple[str, str, str], str | None] = {}
    for site, ep in per_endpoint:
        for row in store.last_probes(site, ep):
            out[(site, ep, row["check_name"])] = row["warning"]
    return out


def _canary_detail(config: Config, canaries: list[ProbeResult]) -> str:
    return "; ".join(
        f"{c.host} {r.check}: {r.detail}" for c, r in zip(config.canaries, canaries, strict=True)
    )


def _track_network(
    store: Store,
    notifier: Notifier,
    network_ok: bool,
    ts: float,
    config: Config,
    canaries: list[ProbeResult],
) -> None:
    was = store.get_meta("network_ok")
    if was is None:
        store.set_meta("network_ok", "1" if network_ok else "0")
        store.set_meta("network_since", str(ts))
        if network_ok:
            return
    elif (was == "1") == network_ok:
        return
    since = float(store.get_meta("network_since") or ts)
    store.set_meta("network_ok", "1" if network_ok else "0")
    store.set_meta("network_since", str(ts))
    if network_ok:
        store.add_agent_event("online", f"offline for {round(ts - since)}s", ts)
        log.warning("agent's network is back after %ds; rounds count again", round(ts - since))
        notifier.send(
            Event(
                "agent_online",
                "failover agent is online again",
                f"The agent's own network was down for {round(ts - since)}s; "
                "rounds in that time counted neither as up nor down.",
                level="success",
            )
        )
    else:
        detail = _canary_detail(config, canaries)
        store.add_agent_event("offline", detail, ts)
        log.error(
            "agent's own network is down (canaries failed: %s); nothing is declared "
            "down until it is back",
            detail,
        )
        notifier.send(
            Event(
                "agent_offline",
                "failover agent is offline",
                f"The canaries failed ({detail}). Until they pass again no site is "
                "declared down or switched.",
                level="failure",
            )
        )


def _reason(change: Change, outcome: EndpointOutcome) -> str:
    if change.to_status in ("suspect", "down") or (change.to_status == "recovering"):
        if change.to_status == "recovering":
            return change.reason
        return f"{change.reason}: {outcome.failure_detail()}"
    return change.reason


def _log_outcome(o: EndpointOutcome) -> None:
    extra = {"site": o.site, "endpoint": o.endpoint}
    for r in o.results:
        log.debug(
            "%s %s: %s",
            r.check,
            "ok" if r.ok else "FAIL",
            r.detail,
            extra={**extra, "check": r.check},
        )
    if o.change is None:
        return
    c = o.change
    level = {"down": 40, "suspect": 30, "recovering": 20, "up": 20}.get(c.to_status, 20)
    log.log(level, "%s -> %s (%s)", c.from_status, c.to_status, _reason(c, o), extra=extra)


def _notify_change(notifier: Notifier, config: Config, o: EndpointOutcome) -> None:
    c = o.change
    assert c is not None
    hostname = config.sites[o.site].hostname
    if c.to_status == "down":
        started = o.after.outage_start or c.ts
        notifier.send(
            Event(
                "down",
                f"[{o.site}] {o.endpoint} is DOWN",
                f"{o.endpoint} ({config.sites[o.site].endpoints[o.endpoint].address}) of "
                f"{hostname} is down since {_iso(started)}: {o.failure_detail()}",
                site=o.site,
                endpoint=o.endpoint,
                level="failure",
            )
        )
    elif c.to_status == "up" and c.from_status in ("down", "recovering"):
        notifier.send(
            Event(
                "recovered",
                f"[{o.site}] {o.endpoint} recovered",
                f"{o.endpoint} of {hostname} is up again ({c.reason}).",
                site=o.site,
                endpoint=o.endpoint,
                level="success",
            )
        )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


# --- cron: one tick -----------------------------------------------------------------------


@dataclass
class HookContext:
    """What a stage that runs after each round (backups, the failover runbook) gets.

    `spawn(key, fn)` runs long work (a restore, a backup): inline in a cron `check`, in a
    worker thread with its own state connection in the daemon, so that rounds go on
    meanwhile. A key still running is not started again (and spawn returns False).
    """

    loaded: LoadedConfig
    store: Store
    notifier: Notifier
    result: RoundResult | None
    spawn: Callable[[str, Callable[[Store], None]], bool]
    daemon: bool = False


Hook = Callable[[HookContext], None]
_tick_hooks: list[Hook] = []


def add_tick_hook(hook: Hook) -> None:
    """Later stages (backups, the failover runbook) run after each round through hooks."""
    if hook not in _tick_hooks:
        _tick_hooks.append(hook)


def _default_hooks() -> None:
    from failover.stages import register_all  # the stages import heavier modules

    register_all()


def tick(loaded: LoadedConfig, store: Store, notifier: Notifier) -> RoundResult:
    """One round for cron: probe everything, then run what the hooks say is due."""
    for site_name, site in loaded.config.sites.items():
        store.ensure_active(site_name, site.initial_active)
    result = run_round(loaded.config, store, notifier)
    run_hooks(HookContext(loaded, store, notifier, result, spawn=_inline_spawn(store)))
    prune(loaded, store)
    return result


def _inline_spawn(store: Store) -> Callable[[str, Callable[[Store], None]], bool]:
    def spawn(key: str, fn: Callable[[Store], None]) -> bool:
        try:
            fn(store)
        except Exception as exc:
            log.error("%s failed: %s", key, exc)
        return True

    return spawn


def run_hooks(ctx: HookContext) -> None:
    _default_hooks()
    for hook in _tick_hooks:
        try:
            hook(ctx)
        except Exception as exc:  # one failing stage never stops the watch
            log.error(
                "%s failed: %s: %s", getattr(hook, "__name__", "hook"), exc.__class__.__name__, exc
            )


def prune(loaded: LoadedConfig, store: Store, now: float | None = None) -> None:
    now = now or time.time()
    last = float(store.get_meta("last_prune") or 0)
    if now - last < 3600:
        return
    removed = store.prune(now - loaded.config.observation_retention)
    store.set_meta("last_prune", str(now))
    if removed:
        log.info("pruned %d probe result(s) older than the retention", removed)


# --- daemon ----------------------------------------------------------------------------------


class Agent:
    """`failover agent`: rounds on a schedule until SIGTERM/SIGINT; SIGHUP reloads the config.

    Each distinct policy interval gets one scheduled job. A job starts its round in a
    worker thread and returns at once, so the schedule does not drift by the round's
    duration; a round still running when its next one is due makes that one skip, and
    the skip is logged.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        store: Store,
        notifier: Notifier,
        reload: Callable[[], LoadedConfig],
    ) -> None:
        import schedule

        self.loaded = loaded
        self.store = store
        self.notifier = notifier
        self._reload = reload
        self._scheduler = schedule.Scheduler()
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._store_lock = threading.Lock()
        self._running: dict[float, threading.Thread] = {}
        self._jobs: dict[str, threading.Thread] = {}
        self.rounds = 0
        self.skipped = 0

    # signals only flip flags: the main loop acts on them
    def _on_stop(self, signum: int, _frame: Any) -> None:
        log.info("received %s, stopping after the current round", signal.Signals(signum).name)
        self._stop.set()

    def _on_hup(self, _signum: int, _frame: Any) -> None:
        self._reload_requested.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _plan_jobs(self) -> None:
        self._scheduler.clear()
        by_interval: dict[float, list[str]] = {}
        for name, site in self.loaded.config.sites.items():
            by_interval.setdefault(site.policy.interval, []).append(name)
            self.store.ensure_active(name, site.initial_active)
        for interval, sites in sorted(by_interval.items()):
            self._scheduler.every(interval).seconds.do(  # type: ignore[arg-type]
                self._start_round, interval, sites
            )
            log.info("probing %s every %ss", ", ".join(sites), f"{interval:g}")
        # Backups and other stages: due work is checked once a minute (and after rounds).
        self._scheduler.every(60).seconds.do(self._start_hooks)

    def _start_round(self, interval: float, sites: list[str]) -> None:
        running = self._running.get(interval)
        if running is not None and running.is_alive():
            self.skipped += 1
            log.warning("round for %s skipped: the previous one is still running", ", ".join(sites))
            return
        thread = threading.Thread(
            target=self._round, args=(sites,), name=f"round-{interval:g}", daemon=True
        )
        self._running[interval] = thread
        thread.start()

    def _round(self, sites: list[str]) -> None:
        try:
            with self._store_lock:
                config = self.loaded.config
            result = run_round(config, self.store, self.notifier, sites, self._store_lock)
            self.rounds += 1
            with self._store_lock:
                run_hooks(self._context(result))
        except Exception as exc:
            log.error("round failed: %s: %s", exc.__class__.__name__, exc)

    def _start_hooks(self) -> None:
        def work() -> None:
            with self._store_lock:
                run_hooks(self._context(None))
                prune(self.loaded, self.store)

        threading.Thread(target=work, name="hooks", daemon=True).start()

    def _context(self, result: RoundResult | None) -> HookContext:
        return HookContext(
            self.loaded, self.store, self.notifier, result, spawn=self._spawn, daemon=True
        )

    def _spawn(self, key: str, fn: Callable[[Store], None]) -> bool:
        """Run `fn` in a worker thread with its own state connection (the process already
        holds the state lock), unless the same key is still running."""
        running = self._jobs.get(key)
        if running is not None and running.is_alive():
            return False

        def work() -> None:
            store = Store.open(self.store.path)
            try:
                fn(store)
            except Exception as exc:
                log.error("%s failed: %s: %s", key, exc.__class__.__name__, exc)
            finally:
                store.close()

        thread = threading.Thread(target=work, name=key, daemon=True)
        self._jobs[key] = thread
        thread.start()
        return True

    def busy(self) -> list[str]:
        return [key for key, t in self._jobs.items() if t.is_alive()]

    def _do_reload(self) -> None:
        self._reload_requested.clear()
        try:
            new = self._reload()
        except Exception as exc:
            log.error(
                "config reload failed, keeping the running config: %s", str(exc).replace("\n", "; ")
            )
            self.store.add_agent_event("reload", f"failed: {str(exc).splitlines()[0]}")
            return
        with self._store_lock:
            self.loaded = new
            self._plan_jobs()
        self.store.add_agent_event("reload", f"{len(new.config.sites)} site(s)")
        log.info("config reloaded: %d site(s)", len(new.config.sites))

    def run(self, max_rounds: int | None = None) -> int:
        self.store.add_agent_event("started", f"{len(self.loaded.config.sites)} site(s)")
        self._plan_jobs()
        self._scheduler.run_all()  # a first round at once, not one interval later
        try:
            while not self._stop.is_set():
                if self._reload_requested.is_set():
                    self._do_reload()
                self._scheduler.run_pending()
                if max_rounds is not None and self.rounds >= max_rounds:
                    break
                idle = self._scheduler.idle_seconds
                self._stop.wait(min(max(idle or 0.2, 0.05), 0.5))
        finally:
            for thread in list(self._running.values()):
                thread.join(timeout=30)
            for key in self.busy():
                # A run or backup still going: it is journaled, the next start resumes it.
                log.warning("stopping while %s is still running; it resumes at the next start", key)
            self.store.add_agent_event("stopped", f"{self.rounds} round(s), {self.skipped} skipped")
            self.notifier.flush(10)
        return 0
