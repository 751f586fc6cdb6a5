"""Talking to systemd (Type=notify): READY when the agent's first round is done, STATUS
lines, STOPPING, RELOADING, and the watchdog: `WATCHDOG=1` at half the `WatchdogSec=`
period for as long as rounds keep completing, so that a hung round loop is restarted by
systemd. No dependency: the protocol is one datagram to the socket in $NOTIFY_SOCKET (an
abstract socket when it starts with `@`). Outside systemd every call does nothing."""

from __future__ import annotations

import os
import socket

from failover.logs import get_logger

log = get_logger("agent")


def notify(*lines: str) -> bool:
    """Send `KEY=value` lines to systemd; False when not under systemd or on failure."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc.__class__.__name__)
        return False


def watchdog_period() -> float | None:
    """`WatchdogSec=` in seconds when systemd watches this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (a wrapper)
    return int(usec) / 1_000_000
