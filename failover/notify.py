"""Notifications through apprise. A failing notification is logged and never breaks the
caller: the loop that watches the sites must go on whatever a chat service does.
apprise runs in a short-lived child process (see `_deliver`).

Messages go through a background thread so that a slow notification service never
delays a probe round; `flush()` waits for the queue (one-shot commands call it at exit).
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
from typing import TYPE_CHECKING

from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.config.models import NotifyTarget, Site

log = get_logger("notify")

DELIVERY_TIMEOUT = 60  # seconds for one notification to all its targets

EVENTS = (
    "down",
    "recovered",
    "agent_offline",
    "agent_online",
    "failover",
    "backup",
    "warning",
    "drill",
    "maintenance",
)


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


class Notifier:
    """Delivers events to the global targets, and for a site's events to that site's own
    targets as well (or instead: `notify.replace`). Events of a site in maintenance
    (`quiet`) are not sent."""

    def __init__(
        self, targets: Sequence[NotifyTarget], sites: Mapping[str, Site] | None = None
    ) -> None:
        self._targets = list(targets)
        self._sites = dict(sites or {})
        self.quiet: dict[str, str] = {}  # site -> why it is quiet (maintenance)
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

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

    def _chosen(self, event: Event) -> list[NotifyTarget]:
        targets = self.targets_for(event.site)
        if event.only is not None:
            targets = [t for i, t in enumerate(targets) if i in event.only]
        return [t for t in targets if t.events is None or event.kind in t.events]

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
            event = self._queue.get()
            try:
                if event is None:
                    return
                self._deliver(event)
            finally:
                self._queue.task_done()

    def _deliver(self, event: Event) -> None:
        urls = [t.url.reveal() for t in self._chosen(event)]
        # apprise loads every plugin when imported (~28 MB): it runs in a short-lived child
        # process so that the agent stays small, and a hung service cannot hang the agent.
        # The URLs hold tokens: they go through stdin, never the command line.
        payload = json.dumps(
            {"urls": urls, "title": event.title, "body": event.body, "level": event.level}
        )
        extra = {"site": event.site, "endpoint": event.endpoint}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "failover.notify"],
                input=payload,
                text=True,
                capture_output=True,
                timeout=DELIVERY_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            self.failed += 1
            log.error(
                "notification %r timed out after %ss", event.title, DELIVERY_TIMEOUT, extra=extra
            )
            return
        if proc.returncode == 0:
            self.sent += 1
            log.info("notified: %s", event.title, extra=extra)
        else:
            self.failed += 1
            reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
            log.error(
                "notification %r could not be delivered to every target: %s",
                event.title,
                reason,
                extra=extra,
            )


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
    if not ok:
        problems.append("a target refused or did not answer")
    return ok and not problems, problems


def _child_main() -> int:
    """`python -m failover.notify`: one notification, read as JSON from stdin."""
    request = json.loads(sys.stdin.read())
    ok, problems = deliver(
        request["urls"], request["title"], request["body"], request.get("level", "warning")
    )
    for problem in problems:
        sys.stderr.write(problem + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_child_main())
