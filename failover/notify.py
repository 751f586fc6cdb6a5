"""Notifications through apprise. A failing notification is logged and never breaks the
caller: the loop that watches the sites must go on whatever a chat service does.

Messages go through a background thread so that a slow notification service never
delays a probe round; `flush()` waits for the queue (one-shot commands call it at exit).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from failover.logs import get_logger

log = get_logger("notify")

EVENTS = ("down", "recovered", "agent_offline", "agent_online", "failover", "backup", "warning")


@dataclass(frozen=True)
class Event:
    kind: str  # one of EVENTS
    title: str
    body: str
    site: str | None = None
    endpoint: str | None = None
    level: str = "warning"  # info, success, warning, failure (apprise's notify types)


class Notifier:
    def __init__(self, targets: Sequence[object]) -> None:
        self._targets = list(targets)  # config.models.NotifyTarget
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
        return any(t.events is None or event.kind in t.events for t in self._targets)  # type: ignore[attr-defined]

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
        try:
            import apprise  # heavy: imported on the first notification only
        except ImportError:  # pragma: no cover - a dependency
            log.error("apprise is not installed: cannot send %r", event.title)
            self.failed += 1
            return
        urls = [t.url.reveal() for t in self._targets  # type: ignore[attr-defined]
                if t.events is None or event.kind in t.events]  # type: ignore[attr-defined]
        app = apprise.Apprise()
        for url in urls:
            if not app.add(url):
                log.error("notification target %d is not a valid apprise URL", urls.index(url))
        if not len(app):
            self.failed += 1
            return
        notify_type = {
            "info": apprise.NotifyType.INFO,
            "success": apprise.NotifyType.SUCCESS,
            "warning": apprise.NotifyType.WARNING,
            "failure": apprise.NotifyType.FAILURE,
        }.get(event.level, apprise.NotifyType.WARNING)
        try:
            ok = app.notify(title=event.title, body=event.body, notify_type=notify_type)
        except Exception as exc:  # apprise plugins may raise anything
            ok = False
            log.error("notification failed: %s", exc.__class__.__name__)
        if ok:
            self.sent += 1
            log.info("notified: %s", event.title, extra={"site": event.site,
                                                          "endpoint": event.endpoint})
        else:
            self.failed += 1
            log.error("notification %r could not be delivered to every target", event.title,
                      extra={"site": event.site, "endpoint": event.endpoint})
