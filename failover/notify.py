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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.config.models import NotifyTarget

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
    "coordination",
)


@dataclass(frozen=True)
class Event:
    kind: str  # one of EVENTS
    title: str
    body: str
    site: str | None = None
    endpoint: str | None = None
    level: str = "warning"  # info, success, warning, failure (apprise's notify types)


class Notifier:
    def __init__(self, targets: Sequence[NotifyTarget]) -> None:
        self._targets = list(targets)
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    def send(self, event: Event) -> None:
        """Queue an event; returns at once."""
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
        return any(t.events is None or event.kind in t.events for t in self._targets)

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
        urls = [t.url.reveal() for t in self._targets if t.events is None or event.kind in t.events]
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
