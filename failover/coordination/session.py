"""One watcher's part in its coordination group, after every probe round:

1. publish its verdicts (per endpoint up/down/unknown, since when, a sequence number);
2. read the others', and judge their freshness on its own monotonic clock (or the engine's);
3. hold, renew or take the leader's lease (only watchers with can_act; only with their own
   network fine);
4. bring the group's facts home: the active endpoint, the runs (a new leader adopts the
   open run the old one started, and resumes it);
5. work out the group's verdict per endpoint (quorum.py) for `decide()`, record what
   changed (report timelines), and keep a view of it all for `status`;
6. in the agent, when the group is one publication away from calling an endpoint down (the
   watchers still short of it are failing, only not yet for `down_after`), the leader
   follows them: it reads their publications every tenth of an interval until its next
   round and runs `on_change` (the decision) as soon as the group's verdict changes. The
   watchers' rounds are not in step; without this, a leader that read just before the
   others published would decide one round late.

Only the leader notifies: it tells group verdict changes and the disagreement of a watcher;
a watcher that loses contact with the engine alarms once (and says when it is back).
The memory between rounds lives in the local state, so that `failover check` from cron
and a restarted agent carry on (same machine, same monotonic clock).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from failover.coordination import grouprun
from failover.coordination import journal as cjournal
from failover.coordination.lease import Lease, renew_due
from failover.coordination.quorum import (
    GroupVerdict,
    Rule,
    Seen,
    WatcherVerdict,
    age,
    group_verdict,
    is_fresh,
    may_turn_down,
    observe,
    verdict_of,
)
from failover.errors import FailoverError, LostLeadership, UsageError
from failover.logs import get_logger
from failover.notify import Event, Notifier
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.coordination import Coordination
    from failover.config.load import LoadedConfig
    from failover.hooks import Hook, HookContext
    from failover.runs.model import Decision, Run, RunPlan
    from failover.store import Store
    from providers.coordination.base import Coordinator, Item, LeaderInfo

log = get_logger("coordination")

FOLLOW_SPLIT = 10  # a leader following the group reads it this many times per interval


def watcher_key(name: str) -> str:
    return f"watchers/{name}"


def require_watcher(loaded: LoadedConfig) -> str:
    from failover.config.coordination import DEFAULT_WATCHER_FILE

    if loaded.watcher is None:
        coordination = loaded.config.coordination
        assert coordination is not None
        where = coordination.watcher_file or loaded.path.parent / DEFAULT_WATCHER_FILE
        raise UsageError(
            "this machine's watcher name is not set: pass --watcher NAME, set "
            f"$FAILOVER_WATCHER, or write `watcher: NAME` to {where} "
            f"(one of {', '.join(coordination.watchers)})"
        )
    return loaded.watcher


class Session:
    """A watcher's coordination, one per process (the agent's rounds, or one `check`)."""

    def __init__(self, loaded: LoadedConfig, coordinator: Coordinator | None = None) -> None:
        self.me = require_watcher(loaded)
        self.loaded = loaded
        self.boot = uuid.uuid4().hex[:12]
        self._coordinator = coordinator
        self._engine_fingerprint: Any = None
        self._lock = threading.RLock()
        self.lease: Lease | None = None
        self.engine_ok = False
        self.leader: LeaderInfo | None = None
        self.verdicts: dict[tuple[str, str], GroupVerdict] = {}
        self.records: dict[str, Item | None] = {}
        self.clock = _boottime
        self.notifier: Notifier | None = None
        self._events: list[tuple[str, str, str, dict[str, Any]]] = []
        self._since: dict[str, float] = {}
        self._last_verdicts: dict[str, list[dict[str, Any]]] = {}
        # what runs when following the group changes its verdict (the CLI: the decision)
        self.on_change: Hook | None = None
        self._mine: dict[str, Any] | None = None  # this round's own publication
        self._turning: set[str] = set()  # the watchers whose next verdict may decide
        self._follow_stop = threading.Event()
        self.follower: threading.Thread | None = None  # following the group right now

    # --- the engine ---------------------------------------------------------------------------

    @property
    def config(self) -> Coordination:
        c = self.loaded.config.coordination
        assert c is not None
        return c

    @property
    def can_act(self) -> bool:
        return self.config.watchers[self.me].can_act

    def coordinator(self) -> Coordinator:
        engine = getattr(self.config, self.config.engine)
        if self._coordinator is None or self._engine_fingerprint != (self.config.engine, engine):
            from providers.coordination import make_coordinator

            if self._coordinator is not None:
                self._coordinator.close()
            self._coordinator = make_coordinator(self.config, clock=self.clock)
            self._engine_fingerprint = (self.config.engine, engine)
        return self._coordinator

    def selftest(self, store: Store | None = None, *, force: bool = False) -> None:
        """Run the self-test unless this state already holds a pass for this engine; raise
        NotHonoured when the engine does not honour conditional writes."""
        from providers.coordination.base import NotHonoured

        fingerprint = f"{self.config.engine}:{self.coordinator().describe()}"
        if (
            store is not None
            and not force
            and store.get_meta("coordination:selftest") == fingerprint
        ):
            return
        report = self.coordinator().selftest(writers=self.config.selftest_writers)
        if not report.ok:
            raise NotHonoured(
                f"{self.coordinator().label} does not honour conditional writes "
                f"({'; '.join(report.failures())}): refusing to coordinate through it",
                hint="use an S3 service that supports If-None-Match/If-Match on PutObject, "
                "or an etcd cluster",
            )
        log.info(
            "self-test passed: %s honours conditional writes (%d checks, %.1fs)",
            self.coordinator().label,
            len(report.checks),
            report.seconds,
        )
        if store is not None:
            store.set_meta("coordination:selftest", fingerprint)

    # --- what the runs see ------------------------------------------------------------------

    def deciding(self) -> AbstractContextManager[Any]:
        """Hold this while deciding on the group's runs (after a round, or when following
        the group): one decision at a time, and no round brings the group's facts home
        between committing a run in the engine and journaling it here."""
        return self._lock

    def may_act(self) -> bool:
        with self._lock:
            return (
                self.can_act
                and self.engine_ok
                and self.lease is not None
                and self.lease.valid(self.clock())
            )

    def is_leader(self) -> bool:
        with self._lock:
            return self.lease is not None and self.lease.valid(self.clock())

    def health(self, site: str) -> dict[str, HealthState]:
        """The group's verdict per endpoint, in the shape `decide()` takes."""
        out: dict[str, HealthState] = {}
        now = time.time()
        for ep in self.loaded.config.sites[site].endpoints:
            verdict = self.verdicts.get((site, ep))
            since = self._since.get(f"{site}/{ep}", now)
            if verdict is not None and verdict.status == "down":
                out[ep] = HealthState(
                    status="down", since=since, last_ts=now, streak_ok=False, outage_start=since
                )
            elif verdict is not None and verdict.status == "up":
                out[ep] = HealthState(status="up", since=since, last_ts=now, streak_ok=True)
            else:
                out[ep] = HealthState(status="unknown", last_ts=now)
        return out

    def commit_start(
        self, store: Store, site: str, plan: RunPlan, decision: Decision
    ) -> str | None:
        """Commit the decision to start `plan` in the engine: once per epoch
        (create-if-absent), and the site's run record (create-if-absent, or over a finished
        one). Returns the run's group id, or None when the group does not let it start."""
        with self._lock:
            lease = self.lease
            if lease is None or not self.may_act():
                return None
            coord = self.coordinator()
            try:
                key = grouprun.decision_key(site, lease.epoch)
                if coord.get(key) is not None:
                    # This epoch decided once already (an earlier run, now over): take a new
                    # epoch for the next decision.
                    lease = self._new_epoch(lease)
                    if lease is None:
                        return None
                    key = grouprun.decision_key(site, lease.epoch)
                uid = uuid.uuid4().hex
                decided = coord.create_fenced(
                    lease,
                    key,
                    {
                        "uid": uid,
                        "kind": plan.kind,
                        "source": plan.source,
                        "target": plan.target,
                        "reason": decision.reason,
                        "by": self.me,
                        "ts": time.time(),
                        "verdicts": self._verdict_summary(site),
                    },
                )
                if decided is None:
                    return None
                current = coord.get(grouprun.run_key(site))
                if current is not None and grouprun.is_open(current.value):
                    return None  # an open run: adopted and resumed, never a second one
                record = {
                    "uid": uid,
                    "site": site,
                    "kind": plan.kind,
                    "trigger": "auto",
                    "source": plan.source,
                    "target": plan.target,
                    "status": "running",
                    "created": time.time(),
                    "finished": None,
                    "attempts": 0,
                    "options": {},
                    "detail": None,
                    "epoch": lease.epoch,
                    "by": self.me,
                    "steps": [
                        {
                            "idx": i,
                            "name": step.name,
                            "title": step.title,
                            "status": "skipped" if step.skip else "pending",
                            "started": None,
                            "finished": None,
                            "attempts": 0,
                            "detail": step.skip,
                            "data": {},
                        }
                        for i, step in enumerate(plan.steps)
                    ],
                }
                if current is None:
                    created = coord.create_fenced(lease, grouprun.run_key(site), record)
                else:
                    created = coord.replace_fenced(
                        lease, grouprun.run_key(site), record, current.version
                    )
                if created is None:
                    return None
                self.records[site] = created
                log.info(
                    "committed the %s decision in epoch %d (run %s)",
                    plan.kind,
                    lease.epoch,
                    uid[:8],
                    extra={"site": site},
                )
                return uid
            except FailoverError as exc:
                log.error("cannot commit the decision: %s", exc, extra={"site": site})
                return None

    def _new_epoch(self, lease: Lease) -> Lease | None:
        coord = self.coordinator()
        coord.resign(lease)
        self.lease = None
        memory: dict[str, Any] = {}
        new, info = coord.campaign(self.me, self.config.lease_ttl, self.config.margin, memory)
        self.lease, self.leader = new, info
        return new

    def guard(self, site: str, uid: str) -> GroupGuard:
        return GroupGuard(self, site, uid)

    # --- leases, for the guard ----------------------------------------------------------------

    def check_lease(self, renew: bool) -> Lease:
        with self._lock:
            lease = self.lease
            if lease is None or not lease.valid(self.clock()):
                raise LostLeadership("this watcher's lease may have lapsed")
            if renew:
                try:
                    renewed = self.coordinator().renew(lease)
                except FailoverError as exc:
                    raise LostLeadership(f"cannot renew the lease: {exc}") from None
                if renewed is None:
                    self.lease = None
                    raise LostLeadership("the lease was taken over by another watcher")
                self.lease = lease = renewed
                if not lease.valid(self.clock()):
                    raise LostLeadership("the lease lapsed while renewing it")
            return lease

    def mirror(self, run: Run, uid: str) -> None:
        """Record the run's progress as the group's fact (fenced by the lease)."""
        with self._lock:
            lease = self.check_lease(renew=False)
            coord = self.coordinator()
            record = grouprun.record_of(run, uid, lease.epoch, self.me)
            try:
                current = self.records.get(run.site)
                if current is None or current.value.get("uid") != uid:
                    current = coord.get(grouprun.run_key(run.site))
                if current is None or current.value.get("uid") != uid:
                    raise LostLeadership("the group's run record is not this run any more")
                item = coord.replace_fenced(
                    lease, grouprun.run_key(run.site), record, current.version
                )
                if item is None:
                    self.records.pop(run.site, None)
                    raise LostLeadership("another leader has taken this run over")
                self.records[run.site] = item
                if run.step_planned("activate") and _step_done(run, "activate"):
                    self._publish_active(lease, run, uid)
            except FailoverError as exc:
                if isinstance(exc, LostLeadership):
                    raise
                raise LostLeadership(f"cannot record the run's progress: {exc}") from None

    def _publish_active(self, lease: Lease, run: Run, uid: str) -> None:
        coord = self.coordinator()
        key = grouprun.active_key(run.site)
        current = coord.get(key)
        if current is not None and current.value.get("run") == uid:
            return
        step = next(s for s in run.steps if s["name"] == "activate")
        doc = {
            "active": run.target,
            "since": step.get("finished") or time.time(),
            "run": uid,
            "epoch": lease.epoch,
            "by": self.me,
        }
        if current is None:
            coord.create_fenced(lease, key, doc)
        else:
            coord.replace_fenced(lease, key, doc, current.version)

    # --- the round ----------------------------------------------------------------------------

    def round(self, ctx: HookContext) -> None:
        """After a probe round: publish, read, lease, group facts, verdicts, view."""
        if ctx.result is None:
            return  # the daemon's periodic hook run: nothing new to publish
        with self._lock:
            self._follow_stop.set()  # this round reads everything itself
            self.loaded = ctx.loaded
            # the group's own notices go out as they are (ctx.notifier may be the gate)
            self.notifier = getattr(ctx.notifier, "inner", ctx.notifier)
            store = ctx.store
            cjournal.ensure_schema(store)
            state = cjournal.load_state(store)
            self._since = state.setdefault("since", {})
            now = self.clock()
            network_ok = ctx.result.network_ok
            doc = self._my_document(store, state, network_ok)
            items: dict[str, Item | None] = {}
            try:
                self.selftest(store)
                coord = self.coordinator()
                coord.put(watcher_key(self.me), doc)
                keys = [watcher_key(w) for w in self.config.watchers if w != self.me]
                for site in self.loaded.config.sites:
                    keys += [grouprun.run_key(site), grouprun.active_key(site)]
                items = coord.get_many(keys)
                self._leadership(state, network_ok)
                self._engine_back(store, state)
            except FailoverError as exc:
                self._engine_lost(store, state, exc)
            self.records = {s: items.get(grouprun.run_key(s)) for s in self.loaded.config.sites}
            self._judge(store, state, doc, items, now)
            if self.engine_ok:
                self._bring_home(store, items)
            state["lease"] = asdict(self.lease) if self.lease else None
            cjournal.save_state(store, state)
            cjournal.save_view(store, self._view(state, now))
            self._mine = doc
        self._follow(ctx, now)

    # --- following the group between rounds ---------------------------------------------------

    def _follow(self, ctx: HookContext, started: float) -> None:
        """Follow the watchers the group waits for until the next round (see the module's
        docstring): only in the agent, only the watcher that may act."""
        if not ctx.daemon or self.on_change is None or not self._turning or not self.may_act():
            return
        interval = self._interval()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._following,
            args=(ctx, stop, started + interval, interval),
            name="coordination-follow",
            daemon=True,
        )
        with self._lock:
            self._follow_stop, self.follower = stop, thread
        thread.start()

    def _following(
        self, ctx: HookContext, stop: threading.Event, until: float, interval: float
    ) -> None:
        from failover.hooks import HookContext
        from failover.store import Store, describe_failure

        period = min(max(interval / FOLLOW_SPLIT, 0.05), 1.0)
        try:
            store = Store.open(ctx.store.path)  # this thread's own connection
        except FailoverError as exc:
            log.debug("not following the group: %s", exc)
            return
        try:
            while not stop.wait(period):
                with self._lock:
                    turning = sorted(self._turning)
                    if stop.is_set() or self.clock() >= until or not turning:
                        return
                    if not self.may_act():
                        return
                    coord = self.coordinator()
                try:
                    items = coord.get_many([watcher_key(w) for w in turning])
                except FailoverError as exc:
                    log.debug("following the group: %s", exc)
                    return  # the next round reads again (and alarms if it must)
                if self._refresh(store, items, stop) and self.on_change is not None:
                    log.info("the group's verdict changed between rounds: deciding now")
                    self.on_change(
                        HookContext(
                            self.loaded, store, ctx.notifier, ctx.result, ctx.spawn, daemon=True
                        )
                    )
        except Exception as exc:  # a full disk, a bug: the rounds go on
            log.error("following the group failed: %s", describe_failure(exc))
        finally:
            store.close()

    def _refresh(self, store: Store, items: dict[str, Item | None], stop: threading.Event) -> bool:
        """Judge again with the publications just read; whether a group verdict changed."""
        with self._lock:
            if stop.is_set() or self._mine is None:
                return False
            state = cjournal.load_state(store)
            self._since = state.setdefault("since", {})
            before = {key: group.status for key, group in self.verdicts.items()}
            now = self.clock()
            self._judge(store, state, self._mine, items, now)
            state["lease"] = asdict(self.lease) if self.lease else None
            cjournal.save_state(store, state)
            cjournal.save_view(store, self._view(state, now))
            return any(before.get(key) != group.status for key, group in self.verdicts.items())

    def _my_document(self, store: Store, state: dict[str, Any], network_ok: bool) -> dict[str, Any]:
        seq = int(state.get("seq") or 0) + 1
        state["seq"] = seq
        endpoints: dict[str, dict[str, Any]] = {}
        health = store.all_health()
        for site_name, site in self.loaded.config.sites.items():
            for ep in site.endpoints:
                h = HealthState.from_dict(health.get((site_name, ep)))
                endpoints[f"{site_name}/{ep}"] = {
                    "verdict": verdict_of(h.status, network_ok),
                    "health": h.status,
                    "since": h.since,
                }
        return {
            "watcher": self.me,
            "seq": seq,
            "boot": self.boot,
            "ts": time.time(),  # this machine's clock: shown, never compared
            "network_ok": network_ok,
            "can_act": self.can_act,
            "endpoints": endpoints,
        }

    def _leadership(self, state: dict[str, Any], network_ok: bool) -> None:
        coord = self.coordinator()
        cfg = self.config
        now = self.clock()
        lease = self.lease
        if lease is None and state.get("lease"):
            # A lease this machine held before (a restart, or the last cron run): still ours
            # if it cannot have lapsed; renewing it proves it was not taken over.
            try:
                lease = Lease(**state["lease"])
            except TypeError:
                lease = None
        if lease is not None and not lease.valid(now):
            log.warning("the lease (epoch %d) may have lapsed: not acting", lease.epoch)
            lease = None
        if lease is not None and (not network_ok or not self.can_act):
            lease = None  # let a watcher with a working network take over
        if lease is not None and renew_due(lease, now, self._interval()):
            renewed = coord.renew(lease)
            if renewed is None:
                log.warning("lost the lease (epoch %d) to another watcher", lease.epoch)
            lease = renewed
        if lease is None:
            memory = state.setdefault("memory", {})
            lease, info = coord.campaign(
                self.me, cfg.lease_ttl, cfg.margin, memory, may_act=self.can_act and network_ok
            )
            if lease is not None:
                log.warning("this watcher is now the leader (epoch %d)", lease.epoch)
        else:
            from providers.coordination.base import LeaderInfo

            info = LeaderInfo(self.me, lease.epoch)
        self.lease = lease
        previous = state.get("leader")
        if previous != [info.holder, info.epoch]:
            state["leader"] = [info.holder, info.epoch]
            self._events.append(("", "", "leader", {"holder": info.holder, "epoch": info.epoch}))
        self.leader = info

    def _interval(self) -> float:
        return min(s.policy.interval for s in self.loaded.config.sites.values())

    def _engine_lost(self, store: Store, state: dict[str, Any], exc: FailoverError) -> None:
        self.engine_ok = False
        if self.lease is not None and not self.lease.valid(self.clock()):
            self.lease = None
        message = str(exc)
        if state.get("lost_since") is None:
            state["lost_since"] = time.time()
            self._events.append(("", "", "engine", {"ok": False, "detail": message}))
            log.error("lost contact with the coordination engine: %s", message)
            if self.notifier is not None:
                self.notifier.send(
                    Event(
                        "coordination",
                        f"[watcher {self.me}] lost contact with the coordination engine",
                        f"{message}. Until it answers again this watcher's verdicts do not "
                        "reach the group, and no watcher acts without the engine.",
                        level="failure",
                    )
                )
        else:
            log.debug("the coordination engine still does not answer: %s", message)

    def _engine_back(self, store: Store, state: dict[str, Any]) -> None:
        self.engine_ok = True
        lost = state.pop("lost_since", None)
        if lost is None:
            return
        self._events.append(("", "", "engine", {"ok": True, "after": time.time() - lost}))
        log.warning("the coordination engine answers again after %.0fs", time.time() - lost)
        if self.notifier is not None:
            self.notifier.send(
                Event(
                    "coordination",
                    f"[watcher {self.me}] the coordination engine answers again",
                    f"It did not answer for {time.time() - lost:.0f}s.",
                    level="success",
                )
            )

    def _judge(
        self,
        store: Store,
        state: dict[str, Any],
        mine: dict[str, Any],
        items: dict[str, Item | None],
        now: float,
    ) -> None:
        cfg = self.config
        rule = Rule(len(cfg.watchers), cfg.quorum_count, cfg.max_up_count)
        seen_state: dict[str, Any] = state.setdefault("seen", {})
        docs: dict[str, dict[str, Any]] = {self.me: mine}
        seen: dict[str, Seen | None] = {}
        for name in cfg.watchers:
            if name == self.me:
                continue
            prev = Seen(**seen_state[name]) if seen_state.get(name) else None
            item = items.get(watcher_key(name))
            if item is not None:
                value = item.value
                prev = observe(
                    prev, int(value.get("seq") or 0), str(value.get("boot") or ""), now, item.age
                )
                seen_state[name] = asdict(prev)
                docs[name] = value
                state.setdefault("docs", {})[name] = value
            elif (state.get("docs") or {}).get(name):
                docs[name] = state["docs"][name]  # not read this round: judged by its age
            seen[name] = prev
        last_status: dict[str, Any] = state.setdefault("status", {})
        last_watchers: dict[str, Any] = state.setdefault("watcher_verdicts", {})
        turning: set[str] = set()
        for site_name, site in self.loaded.config.sites.items():
            window = cfg.fresh_rounds * site.policy.interval
            for ep in site.endpoints:
                key = f"{site_name}/{ep}"
                verdicts = [
                    v
                    for name in cfg.watchers
                    if (v := self._verdict(name, docs, key, seen, now, window)) is not None
                ]
                group = group_verdict(rule, list(cfg.watchers), verdicts)
                self.verdicts[(site_name, ep)] = group
                coming = [v.watcher for v in verdicts if _turning(v, docs, self.me)]
                if may_turn_down(rule, group, coming):
                    turning.update(coming)
                self._note_changes(site_name, ep, key, group, verdicts, last_status, last_watchers)
        self._turning = turning
        self._last_verdicts = {
            k: [asdict(v) for v in vs] for k, vs in self._collect(docs, seen, now).items()
        }
        cjournal.add_events(store, self._events)
        self._events = []

    def _collect(
        self, docs: dict[str, dict[str, Any]], seen: dict[str, Seen | None], now: float
    ) -> dict[str, list[WatcherVerdict]]:
        out: dict[str, list[WatcherVerdict]] = {}
        cfg = self.config
        for site_name, site in self.loaded.config.sites.items():
            window = cfg.fresh_rounds * site.policy.interval
            for ep in site.endpoints:
                key = f"{site_name}/{ep}"
                out[key] = [
                    self._verdict(name, docs, key, seen, now, window)
                    or WatcherVerdict(name, "unknown", "no verdict", False, None)
                    for name in cfg.watchers
                ]
        return out

    def _verdict(
        self,
        name: str,
        docs: dict[str, dict[str, Any]],
        key: str,
        seen: dict[str, Seen | None],
        now: float,
        window: float,
    ) -> WatcherVerdict | None:
        """Watcher `name`'s published verdict on endpoint `key` (None: it published none)."""
        entry = ((docs.get(name) or {}).get("endpoints") or {}).get(key)
        if entry is None:
            return None
        mine = name == self.me
        return WatcherVerdict(
            name,
            entry.get("verdict", "unknown"),
            str(entry.get("health", "unknown")),
            mine or is_fresh(seen.get(name), now, window),
            0.0 if mine else age(seen.get(name), now),
            entry.get("since"),
        )

    def _note_changes(
        self,
        site: str,
        ep: str,
        key: str,
        group: GroupVerdict,
        verdicts: list[WatcherVerdict],
        last_status: dict[str, Any],
        last_watchers: dict[str, Any],
    ) -> None:
        for v in verdicts:
            if not v.fresh:
                continue
            wkey = f"{key}/{v.watcher}"
            if last_watchers.get(wkey) != v.verdict:
                last_watchers[wkey] = v.verdict
                self._events.append(
                    (
                        site,
                        ep,
                        "watcher",
                        {"watcher": v.watcher, "verdict": v.verdict, "health": v.health},
                    )
                )
        before = last_status.get(key) or {}
        disagree = group.disagreement
        if before.get("status") != group.status:
            self._since[key] = time.time()
            self._events.append(
                (
                    site,
                    ep,
                    "group",
                    {
                        "status": group.status,
                        "down": list(group.down),
                        "up": list(group.up),
                        "unknown": list(group.unknown),
                        "stale": list(group.stale),
                        "reason": group.reason,
                    },
                )
            )
        notified = self._notify_group(site, ep, bool(before.get("notified_down")), group)
        if disagree and not before.get("disagree"):
            self._notify_disagreement(site, ep, group)
        last_status[key] = {"status": group.status, "disagree": disagree, "notified_down": notified}

    def _notify_group(self, site: str, ep: str, notified_down: bool, group: GroupVerdict) -> bool:
        """Tell the owner (leader only) when the group calls an endpoint down, and when it
        is up again after that. Returns whether a down notice stands."""
        if self.notifier is None or not self.is_leader():
            # a follower assumes the leader told: it takes over without telling twice
            if group.status == "down":
                return True
            return False if group.status == "up" else notified_down
        if group.status == "down" and not notified_down:
            self.notifier.send(
                Event(
                    "down",
                    f"[{site}] {ep} is DOWN for the group",
                    f"{', '.join(group.down)} see {ep} down ({group.reason}).",
                    site=site,
                    endpoint=ep,
                    level="failure",
                )
            )
            return True
        if group.status == "up" and notified_down:
            self.notifier.send(
                Event(
                    "recovered",
                    f"[{site}] {ep} recovered for the group",
                    f"{', '.join(group.up)} see {ep} up again.",
                    site=site,
                    endpoint=ep,
                    level="success",
                )
            )
            return False
        return notified_down

    def _notify_disagreement(self, site: str, ep: str, group: GroupVerdict) -> None:
        if self.notifier is None or not self.is_leader():
            return
        self.notifier.send(
            Event(
                "warning",
                f"[{site}] watchers disagree about {ep}",
                f"{', '.join(group.down)} see {ep} down, {', '.join(group.up)} see it up: "
                f"the group says {group.status}; a watcher's own path to {ep} may be broken.",
                site=site,
                endpoint=ep,
            )
        )

    def _bring_home(self, store: Store, items: dict[str, Item | None]) -> None:
        """The group's facts into the local state: the active endpoint and the runs."""
        for site in self.loaded.config.sites:
            active = items.get(grouprun.active_key(site))
            if active is not None:
                target = active.value.get("active")
                row = store.active_endpoint(site)
                if target and (row is None or row["active"] != target):
                    store.set_active(
                        site, str(target), ts=float(active.value.get("since") or time.time())
                    )
                    log.info("the group's active endpoint is %s", target, extra={"site": site})
            record = items.get(grouprun.run_key(site))
            if record is not None and record.value.get("steps"):
                self._bring_run_home(store, site, record)

    def _bring_run_home(self, store: Store, site: str, record: Item) -> None:
        value = record.value
        mine = grouprun.local_run(store, site, value["uid"])
        lease = self.lease
        if grouprun.is_open(value) and lease is not None and self.may_act():
            if int(value.get("epoch") or 0) == lease.epoch and mine is not None:
                return  # our own run: our worker keeps it current
            # the run a former leader left: claim it in our epoch, then resume it
            claimed = dict(value, epoch=lease.epoch, by=self.me)
            try:
                item = self.coordinator().replace_fenced(
                    lease, grouprun.run_key(site), claimed, record.version
                )
            except FailoverError as exc:
                log.error("cannot take the group's run over: %s", exc, extra={"site": site})
                return
            if item is None:
                return
            self.records[site] = item
            adopted = grouprun.adopt(store, claimed)
            log.warning(
                "took over the group's run %s (%s to %s) left by %s: resuming run #%d",
                value["uid"][:8],
                value["kind"],
                value["target"],
                value.get("by"),
                adopted.id,
                extra={"site": site},
            )
            return
        if mine is not None and (
            mine.owner_alive or (mine.owner == os.getpid() and mine.status == "running")
        ):
            return  # a worker executes it (it stops itself when it must)
        if mine is None or not grouprun.same_progress(mine, value):
            grouprun.adopt(store, value)

    # --- the view for status --------------------------------------------------------------

    def _verdict_summary(self, site: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (s, ep), group in self.verdicts.items():
            if s == site:
                out[ep] = {"status": group.status, "down": list(group.down), "up": list(group.up)}
        return out

    def _view(self, state: dict[str, Any], now: float) -> dict[str, Any]:
        cfg = self.config
        endpoints: dict[str, Any] = {}
        for (site, ep), group in self.verdicts.items():
            key = f"{site}/{ep}"
            endpoints[key] = {
                "group": group.status,
                "reason": group.reason,
                "disagreement": group.disagreement,
                "since": self._since.get(key),
                "watchers": self._last_verdicts.get(key, []),
            }
        return {
            "ts": time.time(),
            "watcher": self.me,
            "can_act": self.can_act,
            "engine": cfg.engine,
            "engine_ok": self.engine_ok,
            "lost_since": state.get("lost_since"),
            "leader": None
            if self.leader is None
            else {"holder": self.leader.holder, "epoch": self.leader.epoch},
            "lease_remaining": None if self.lease is None else round(self.lease.remaining(now), 1),
            "rule": Rule(len(cfg.watchers), cfg.quorum_count, cfg.max_up_count).describe(),
            "endpoints": endpoints,
        }


class GroupGuard:
    """engine.execute()'s StepGuard for a group run: renew before irreversible steps, stop
    when the lease may have lapsed, record each step's outcome in the engine."""

    def __init__(self, session: Session, site: str, uid: str) -> None:
        self.session = session
        self.site = site
        self.uid = uid

    def before(self, run: Run, step: str) -> None:
        self.session.check_lease(renew=step in grouprun.IRREVERSIBLE)

    def after(self, run: Run) -> None:
        self.session.mirror(run, self.uid)


def _turning(v: WatcherVerdict, docs: dict[str, dict[str, Any]], me: str) -> bool:
    """Another watcher, fresh, failing but not yet for down_after, with its network fine:
    its next verdict may be down."""
    return (
        v.watcher != me
        and v.fresh
        and v.verdict == "unknown"
        and v.health == "suspect"
        and bool((docs.get(v.watcher) or {}).get("network_ok", True))
    )


def _step_done(run: Run, name: str) -> bool:
    return any(s["name"] == name and s["status"] == "done" for s in run.steps)


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class LeaderNotifier(Notifier):
    """Only the leader notifies: the local round's own down/recovered events give way to
    the leader's group verdicts; other events pass only from the leader; a watcher's own
    coordination alarms (engine lost, back) always pass."""

    def __init__(self, inner: Notifier, session: Session) -> None:
        super().__init__([], bound=inner.bound)
        self.inner = inner
        self.session = session

    def send(self, event: Event) -> None:
        if event.kind == "coordination":
            self.inner.send(event)
        elif event.kind in ("down", "recovered"):
            return  # the group's verdict speaks for the endpoints (sent by the session)
        elif self.session.is_leader():
            self.inner.send(event)

    def flush(self, timeout: float = 30.0) -> bool:
        return self.inner.flush(timeout)

    def after_fork(self) -> None:
        """The cron worker's copy: the inner notifier's queue and thread are its own."""
        self.inner.after_fork()
        self.bound = self.inner.bound


def start_session(loaded: LoadedConfig, store: Store | None, *, starting: bool) -> Session:
    """This watcher's session. `starting` (the agent): prove the engine honours
    conditional writes first; refuse to start when it does not (NotHonoured). An engine
    that does not answer yet is not a refusal: the rounds alarm and retry."""
    session = Session(loaded)
    if store is not None:
        # a lease this machine held (the last cron run): the round's own notices pass
        # while it cannot have lapsed; the round renews or drops it
        held = cjournal.load_state(store).get("lease")
        try:
            session.lease = Lease(**held) if held else None
        except TypeError:
            session.lease = None
    if starting:
        try:
            session.selftest(store, force=True)
        except FailoverError as exc:
            from providers.coordination.base import NotHonoured

            if isinstance(exc, NotHonoured):
                raise
            log.error("coordination self-test not possible yet: %s", exc)
    return session
