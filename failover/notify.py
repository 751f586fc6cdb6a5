"""Notifications through apprise. A failing notification is logged and never breaks the
caller: the loop that watches the sites must go on whatever a chat service does.

Messages go through a background thread so that a slow notification service never delays
a probe round; `flush()` waits for the queue (one-shot commands call it at exit). The
thread delivers what is queued as one *batch*: every (event, target) pair at once, in one
short-lived child process (apprise costs ~28 MB; see `_deliver_batch`), within one overall
bound (DELIVERY_BOUND). A target that never answers costs that bound once per batch, not
its timeout once per message; each pair that did not get through is logged by name (the
target by its number and scheme: its URL holds a token) and counted in `undelivered`.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.config.models import NotifyTarget, Site

log = get_logger("notify")

DELIVERY_BOUND = 15.0  # seconds for one batch of notifications to every target, at most
KILL_GRACE = 3.0  # after the bound, the child has this long to report before it is killed
MAX_PARALLEL = 16  # deliveries in flight at once inside the child
RETRY_PAUSE = 0.5  # before trying a target again that refused (0.5 s, 1.5 s, ... within the bound)


@dataclass(frozen=True)
class Event:
    kind: str  # one of EVENTS
    title: str
    body: str
    site: str | None = None
    endpoint: str | None = None
    level: str = "warning"  # info, success, warning, failure (apprise's notify types)
    # only these of the site's targets (indexes into targets_for(site)); None: all that
    # want the event's kind (reminders go to the targets with remind_every)
    only: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Undelivered:
    """One notification that did not reach one target."""

    title: str
    target: str  # "target 2 (json://)": never the URL, it holds a token
    reason: str


def target_label(index: int, url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"target {index + 1} ({scheme}://)"


class Notifier:
    """Delivers events to the global targets, and for a site's events to that site's own
    targets as well (or instead: `notify.replace`). Events of a site in maintenance
    (`quiet`) are not sent."""

    def __init__(
        self,
        targets: Sequence[NotifyTarget],
        sites: Mapping[str, Site] | None = None,
        bound: float = DELIVERY_BOUND,
    ) -> None:
        self._targets = list(targets)
        self._sites = dict(sites or {})
        self.quiet: dict[str, str] = {}  # site -> why it is quiet (maintenance)
        self.bound = bound
        self._queue: queue.Queue[Event] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0  # events delivered to every target they were meant for
        self.failed = 0  # events that missed at least one target
        self.undelivered: list[Undelivered] = []

    def configure(self, targets: Sequence[NotifyTarget], sites: Mapping[str, Site]) -> None:
        """New targets after a config reload."""
        self._targets, self._sites = list(targets), dict(sites)

    def targets_for(self, site: str | None) -> list[NotifyTarget]:
        """Where an event of `site` (None: of the agent) goes, before filtering by kind."""
        routing = getattr(self._sites.get(site or ""), "notify", None)
        if routing is None:
            return list(self._targets)
        own = list(routing.targets)
        return own if routing.replace else [*self._targets, *own]

    def _chosen(self, event: Event) -> list[tuple[int, NotifyTarget]]:
        """(index in targets_for(site), target) of the targets the event goes to."""
        return [
            (i, t)
            for i, t in enumerate(self.targets_for(event.site))
            if (event.only is None or i in event.only)
            and (t.events is None or event.kind in t.events)
        ]

    def send(self, event: Event) -> None:
        """Queue an event; returns at once."""
        if event.site is not None and event.site in self.quiet:
            log.info(
                "not notifying %r: %s",
                event.title,
                self.quiet[event.site],
                extra={"site": event.site, "endpoint": event.endpoint},
            )
            return
        if not self._wanted(event):
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._worker, name="notify", daemon=True)
                self._thread.start()
        self._queue.put(event)

    def after_fork(self) -> None:
        """In a forked child (the cron worker): a queue, lock and thread of its own; what
        the parent had queued is the parent's to deliver."""
        self._queue = queue.Queue()
        self._thread = None
        self._lock = threading.Lock()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event was tried; False if the deadline passed."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _wanted(self, event: Event) -> bool:
        return bool(self._chosen(event))

    def _worker(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:  # whatever else is queued already goes along
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._deliver_batch(batch)
            except Exception as exc:  # never let the thread die: later events still go out
                log.error("notifications failed: %s", exc.__class__.__name__)
                self.failed += len(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _deliver_batch(self, batch: list[Event]) -> None:
        # apprise loads every plugin when imported (~28 MB): it runs in a short-lived child
        # process so that the agent stays small, and a hung service cannot hang the agent.
        # The URLs hold tokens: they go through stdin, never the command line.
        deliveries: list[dict[str, Any]] = []
        for i, event in enumerate(batch):
            for t, target in self._chosen(event):
                deliveries.append(
                    {
                        "id": len(deliveries),
                        "event": i,
                        "target": t,
                        "url": target.url.reveal(),
                        "title": event.title,
                        "body": event.body,
                        "level": event.level,
                    }
                )
        results = self._run_child(deliveries) if deliveries else {}
        missed: dict[int, list[str]] = {}
        for d in deliveries:
            ok, reason = results.get(d["id"], (False, f"no answer within {self.bound:g}s"))
            if ok:
                continue
            event = batch[d["event"]]
            label = target_label(d["target"], d["url"])
            missed.setdefault(d["event"], []).append(label)
            self.undelivered.append(Undelivered(event.title, label, reason))
            log.error(
                "notification %r not delivered to %s: %s",
                event.title,
                label,
                reason,
                extra={"site": event.site, "endpoint": event.endpoint},
            )
        wanted = {d["event"] for d in deliveries}
        for i, event in enumerate(batch):
            if i not in wanted:  # the targets changed since it was queued (a reload)
                log.info(
                    "not notifying %r: no target wants it any more",
                    event.title,
                    extra={"site": event.site, "endpoint": event.endpoint},
                )
            elif i in missed:
                self.failed += 1
            else:
                self.sent += 1
                log.info(
                    "notified: %s",
                    event.title,
                    extra={"site": event.site, "endpoint": event.endpoint},
                )

    def _run_child(self, deliveries: list[dict[str, Any]]) -> dict[int, tuple[bool, str]]:
        """Each delivery's (ok, reason), as the child reported it; missing: no report."""
        payload = json.dumps({"bound": self.bound, "deliveries": deliveries})
        proc = subprocess.Popen(
            [sys.executable, "-m", "failover.notify"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, _err = proc.communicate(payload, timeout=self.bound + KILL_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _err = proc.communicate()
        results: dict[int, tuple[bool, str]] = {}
        for line in (out or "").splitlines():
            try:
                item = json.loads(line)
                results[int(item["id"])] = (bool(item["ok"]), str(item.get("problem") or ""))
            except (ValueError, KeyError, TypeError):
                continue  # not ours (a plugin printing something)
        return results


def deliver(urls: list[str], title: str, body: str, level: str) -> tuple[bool, list[str]]:
    """Send through apprise in this process. Returns (all delivered, problems)."""
    import apprise

    problems: list[str] = []
    app = apprise.Apprise()
    for i, url in enumerate(urls):
        if not app.add(url):
            problems.append(f"notification target {i + 1} is not a valid apprise URL")
    if not len(app):
        return False, problems or ["no notification target"]
    notify_type = {
        "info": apprise.NotifyType.INFO,
        "success": apprise.NotifyType.SUCCESS,
        "warning": apprise.NotifyType.WARNING,
        "failure": apprise.NotifyType.FAILURE,
    }.get(level, apprise.NotifyType.WARNING)
    try:
        ok = bool(app.notify(title=title, body=body, notify_type=notify_type))
    except Exception as exc:  # apprise plugins may raise anything
        ok = False
        problems.append(f"apprise raised {exc.__class__.__name__}")
    if not ok and not problems:
        problems.append("the target refused or did not answer")
    return ok and not problems, problems


def _child_main() -> int:
    """`python -m failover.notify`: a batch of deliveries, read as JSON from stdin, all at
    once; one JSON line per delivery on stdout as each ends; at the bound, the ones still
    going are reported as not answered and the process exits without waiting for them."""
    import os
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    request = json.loads(sys.stdin.read())
    bound = float(request.get("bound", DELIVERY_BOUND))
    deadline = time.monotonic() + bound
    deliveries = request["deliveries"]
    write_lock = threading.Lock()

    def report(delivery_id: int, ok: bool, problem: str) -> None:
        with write_lock:
            sys.stdout.write(json.dumps({"id": delivery_id, "ok": ok, "problem": problem}) + "\n")
            sys.stdout.flush()

    def one(d: dict[str, Any]) -> tuple[bool, str]:
        # A target that refused or did not answer once (a restart, a blip) is tried again
        # while the bound leaves time: one lost "DOWN" is an owner who never hears of it.
        pause = RETRY_PAUSE
        while True:
            ok, problems = deliver([d["url"]], d["title"], d["body"], d.get("level", "warning"))
            retryable = not ok and not any("not a valid apprise URL" in p for p in problems)
            if not retryable or deadline - time.monotonic() < pause + 1.0:
                return ok, "; ".join(problems)
            time.sleep(pause)
            pause *= 3

    pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(deliveries))))
    futures = {pool.submit(one, d): d["id"] for d in deliveries}
    pending = set(futures)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        for future in done:
            try:
                ok, problem = future.result()
            except Exception as exc:
                ok, problem = False, f"apprise raised {exc.__class__.__name__}"
            report(futures[future], ok, problem)
    for future in pending:
        report(futures[future], False, f"no answer within {bound:g}s")
    sys.stdout.flush()
    os._exit(0)  # threads stuck on a silent target must not keep the process alive


if __name__ == "__main__":
    sys.exit(_child_main())
