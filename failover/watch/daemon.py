"""The watch loop: `tick()` is one round for cron (`failover check`); `Agent` runs rounds on
a schedule as a daemon (`failover agent`). Both run the hooks they are given (backups, the
runs, ...) after each round, with a HookContext whose `spawn` keeps long work off the
rounds' path."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from failover.config.load import LoadedConfig
from failover.errors import ExitCode
from failover.hooks import Hook, HookContext, RoundResult, Spawn
from failover.logs import get_logger
from failover.notify import Notifier
from failover.scrub import scrub
from failover.store import Store, describe_failure
from failover.watch import systemd
from failover.watch.round import run_round

log = get_logger("agent")


def tick(
    loaded: LoadedConfig,
    store: Store,
    notifier: Notifier,
    hooks: Sequence[Hook] = (),
    spawn: Spawn | None = None,
) -> RoundResult:
    """One round for cron: probe everything, then run the hooks. Their long work goes to
    `spawn`: `failover check` passes a worker.Deferred and starts it detached once the state
    lock is released; without one it runs inline (tests, tools)."""
    for site_name, site in loaded.config.sites.items():
        store.ensure_active(site_name, site.initial_active)
    result = run_round(loaded.config, store, notifier)
    run_hooks(
        HookContext(loaded, store, notifier, result, spawn=spawn or inline_spawn(store)), hooks
    )
    prune(loaded, store)
    return result


def inline_spawn(store: Store) -> Spawn:
    """Long work right here, on the round's own state connection (in-process callers)."""

    def spawn(key: str, fn: Callable[[Store], None], *, short: bool = False) -> bool:
        try:
            fn(store)
        except Exception as exc:
            log.error("%s failed: %s", key, describe_failure(exc))
        return True

    return spawn


def run_hooks(ctx: HookContext, hooks: Sequence[Hook]) -> None:
    for hook in hooks:
        try:
            hook(ctx)
        except Exception as exc:  # one failing stage never stops the watch
            log.error("%s failed: %s", getattr(hook, "__name__", "hook"), describe_failure(exc))


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
        hooks: Sequence[Hook] = (),
    ) -> None:
        import schedule

        self.hooks = list(hooks)
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
        self.exit_code = 0
        # systemd (Type=notify): READY after the first round; the watchdog is pinged while
        # rounds keep completing (a round loop that hangs gets no more pings)
        self._watchdog = systemd.watchdog_period()
        self._last_ping = 0.0
        self._progress = time.monotonic()  # when a round last completed (or the start)
        self._ready = False

    # signals only flip flags: the main loop acts on them
    def _on_stop(self, signum: int, _frame: Any) -> None:
        log.info("received %s, stopping after the current round", signal.Signals(signum).name)
        if signum == signal.SIGINT:  # Ctrl-C: "interrupted" (130); SIGTERM is a clean stop
            self.exit_code = int(ExitCode.INTERRUPTED)
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
            try:  # until it is recorded, the config's endpoint counts as active anyway
                self.store.ensure_active(name, site.initial_active)
            except Exception as exc:
                log.error("%s: active endpoint not recorded: %s", name, describe_failure(exc))
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
                run_hooks(self._context(result), self.hooks)
            self._progress = time.monotonic()
        except Exception as exc:  # a full disk, a bug: logged, and the next round runs
            log.error("round failed: %s", describe_failure(exc))

    def _start_hooks(self) -> None:
        def work() -> None:
            try:
                with self._store_lock:
                    run_hooks(self._context(None), self.hooks)
                    prune(self.loaded, self.store)
            except Exception as exc:
                log.error("due work failed: %s", describe_failure(exc))

        threading.Thread(target=work, name="hooks", daemon=True).start()

    def _context(self, result: RoundResult | None) -> HookContext:
        return HookContext(
            self.loaded, self.store, self.notifier, result, spawn=self._spawn, daemon=True
        )

    def _spawn(self, key: str, fn: Callable[[Store], None], *, short: bool = False) -> bool:
        """Run `fn` in a worker thread with its own state connection (the process already
        holds the state lock), unless the same key is still running."""
        running = self._jobs.get(key)
        if running is not None and running.is_alive():
            return False

        def work() -> None:
            try:
                store = Store.open(self.store.path)
            except Exception as exc:
                log.error("%s failed: %s", key, describe_failure(exc))
                return
            try:
                fn(store)
            except Exception as exc:
                log.error("%s failed: %s", key, describe_failure(exc))
            finally:
                store.close()

        thread = threading.Thread(target=work, name=key, daemon=True)
        self._jobs[key] = thread
        thread.start()
        return True

    def _event(self, kind: str, detail: str) -> None:
        """Record an agent event; a state that cannot take it (a full disk) is logged."""
        try:
            with self._store_lock:
                self.store.add_agent_event(kind, detail)
        except Exception as exc:
            log.error("agent event %r not recorded: %s", kind, describe_failure(exc))

    def busy(self) -> list[str]:
        return [key for key, t in self._jobs.items() if t.is_alive()]

    def stale_after(self) -> float:
        """How long without a completed round before the loop counts as hung: two of the
        longest intervals, and a minute for a slow round."""
        intervals = [s.policy.interval for s in self.loaded.config.sites.values()] or [60.0]
        return 2 * max(intervals) + 60.0

    def _systemd_tick(self) -> None:
        now = time.monotonic()
        if not self._ready and self.rounds:
            self._ready = True
            sites = len(self.loaded.config.sites)
            systemd.notify("READY=1", f"STATUS=watching {sites} site(s)")
        if self._watchdog is None or now - self._last_ping < self._watchdog / 2:
            return
        if now - self._progress > self.stale_after():
            if self._last_ping >= 0:
                log.error(
                    "no round completed for %ds: no more watchdog pings (systemd restarts "
                    "the agent)",
                    now - self._progress,
                )
                self._last_ping = -1.0
            return
        self._last_ping = now
        systemd.notify("WATCHDOG=1", f"STATUS={self.rounds} round(s), {self.skipped} skipped")

    def _do_reload(self) -> None:
        self._reload_requested.clear()
        systemd.notify("RELOADING=1")
        try:
            new = self._reload()
        except Exception as exc:
            lines = str(exc).splitlines() or [exc.__class__.__name__]
            log.error(
                "config reload failed, keeping the running config: %s", scrub("; ".join(lines))
            )
            self._event("reload", f"failed: {scrub(lines[0])}")
            systemd.notify("READY=1", "STATUS=config reload failed; the running config is kept")
            return
        with self._store_lock:
            self.loaded = new
            self.notifier.configure(new.config.notify, new.config.sites)
            self._plan_jobs()
        self._event("reload", f"{len(new.config.sites)} site(s)")
        log.info("config reloaded: %d site(s)", len(new.config.sites))
        systemd.notify("READY=1", f"STATUS=watching {len(new.config.sites)} site(s)")

    def run(self, max_rounds: int | None = None) -> int:
        self._event("started", f"{len(self.loaded.config.sites)} site(s)")
        self._plan_jobs()
        self._scheduler.run_all()  # a first round at once, not one interval later
        try:
            while not self._stop.is_set():
                if self._reload_requested.is_set():
                    self._do_reload()
                self._scheduler.run_pending()
                self._systemd_tick()
                if max_rounds is not None and self.rounds >= max_rounds:
                    break
                idle = self._scheduler.idle_seconds
                self._stop.wait(min(max(idle or 0.2, 0.05), 0.5))
        finally:
            systemd.notify("STOPPING=1")
            for thread in list(self._running.values()):
                thread.join(timeout=30)
            for key in self.busy():
                # A run or backup still going: it is journaled, the next start resumes it.
                log.warning("stopping while %s is still running; it resumes at the next start", key)
            self._event("stopped", f"{self.rounds} round(s), {self.skipped} skipped")
            self.notifier.flush(10)
        return self.exit_code
