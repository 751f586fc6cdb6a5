"""Notifications against real listeners on loopback: a receiver that answers, and one that
accepts connections and never answers (a hung chat service). The six notifications of a
bad night must all reach the good target at once, and the silent one costs one bound,
not its timeout six times over (it took 27 s serially before)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from failover.config.models import NotifyTarget
from failover.config.types import Secret
from failover.notify import Event, Notifier
from tests.support import wait_for
from tests.support.receiver import NotificationReceiver

pytestmark = pytest.mark.integration


class SilentListener:
    """Accepts TCP connections on loopback, reads what comes, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def target(url: str) -> NotifyTarget:
    return NotifyTarget(url=Secret(url, "inline"))


def test_notifications_go_out_concurrently_within_one_bound(
    silent: SilentListener, caplog: pytest.LogCaptureFixture
) -> None:
    with NotificationReceiver() as receiver:
        notifier = Notifier([target(silent.url), target(receiver.url)], bound=6.0)
        started = time.monotonic()
        for i in range(6):
            notifier.send(Event("down", f"event {i}", f"body {i}", site="shop"))
        # the answering target gets all six at once, whatever the silent one does
        wait_for(lambda: len(receiver.messages) == 6, 10, "six notifications at the receiver")
        with caplog.at_level(logging.ERROR, logger="failover.notify"):
            assert notifier.flush(30)
        elapsed = time.monotonic() - started
    assert sorted(receiver.titles()) == [f"event {i}" for i in range(6)]
    assert silent.accepted >= 6  # every one was tried at the silent target too
    # the silent target is reported, one line per notification it missed, without its URL
    assert notifier.failed == 6 and notifier.sent == 0
    assert sorted(u.title for u in notifier.undelivered) == [f"event {i}" for i in range(6)]
    assert {u.target for u in notifier.undelivered} == {"target 1 (json://)"}
    lines = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(lines) == 6 and all("target 1 (json://)" in line for line in lines)
    assert not any(str(silent.port) in line for line in lines)
    # one bound for the whole batch (6 s here), never six timeouts in a row
    assert elapsed < 6.0 + 10, f"took {elapsed:.1f}s"


def test_a_target_that_refuses_once_gets_the_notification_on_a_second_try() -> None:
    """A chat service restarting at 3 a.m. answers 500 to the first try: the DOWN notice is
    tried again within the bound, not lost."""
    with NotificationReceiver() as receiver:
        receiver.fail = True
        notifier = Notifier([target(receiver.url)], bound=8.0)
        notifier.send(Event("down", "[shop] primary is DOWN", "body", site="shop"))
        time.sleep(0.3)  # the first try meets the failing service
        receiver.fail = False
        assert notifier.flush(20)
        assert receiver.titles() == ["[shop] primary is DOWN"]
    assert notifier.sent == 1 and notifier.failed == 0 and not notifier.undelivered


def test_an_event_no_target_wants_any_more_is_not_reported_as_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reload between queueing and delivery can leave an event with no target: it is
    said so, never logged as 'notified' (nothing went anywhere), and no child is started."""
    notifier = Notifier([])
    with caplog.at_level(logging.INFO, logger="failover.notify"):
        notifier._deliver_batch([Event("down", "[shop] primary is DOWN", "body", site="shop")])
    messages = [r.getMessage() for r in caplog.records]
    assert notifier.sent == 0 and notifier.failed == 0
    assert any("no target wants it any more" in m for m in messages), messages
    assert not any(m.startswith("notified") for m in messages), messages
