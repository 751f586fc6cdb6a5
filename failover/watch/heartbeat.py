"""Heartbeats: signals to a URL of the user's, so that the watcher's own death (or a
failing backup) is noticed by someone else.

- after rounds, at most every `heartbeat.every`: success, or failure when the agent's
  own network was down (the round could judge nothing);
- around backups (`backup.heartbeat`): start when a backup begins, then its exit status.

How a signal becomes a request depends on the target's `kind` (config/heartbeat.py):
`plain` fetches the URL on success only; `healthchecks` uses the URL, `/start`, `/fail` and
`/<exit status>` with a short message as the body; `uptime-kuma` puts `status`, `msg` and
`ping` in the push URL's query.

A ping never holds up the watch: it runs in a thread of its own with a timeout of at most
the shortest probe interval; `check` waits for it only after it has released the state
lock. A failed ping is a warning, and its log line names the failure, never the URL (it
holds a token): not even an exception's text, which may quote it.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.config.heartbeat import Ping
    from failover.config.models import Config
    from failover.hooks import HookContext, RoundResult

log = get_logger("heartbeat")

Signal = Literal["start", "success", "fail"] | int  # an int: an exit status
MESSAGE_LIMIT = 2000  # characters of a message sent along

_pending: list[threading.Thread] = []
_pending_lock = threading.Lock()


@dataclass(frozen=True)
class Request:
    method: Literal["GET", "POST"]
    url: str
    body: bytes | None = None


def request_for(
    kind: str, url: str, signal: Signal, message: str = "", ms: float | None = None
) -> Request | None:
    """The request that tells `signal` to a target of `kind` at `url`; None when that kind
    has no such signal (a plain URL hears only of success, Uptime Kuma of no start)."""
    message = message[:MESSAGE_LIMIT]
    ok = signal == "success" or signal == 0
    if kind == "plain":
        return Request("GET", url) if ok else None
    if kind == "healthchecks":
        suffix = {"start": "/start", "success": "", "fail": "/fail"}.get(str(signal))
        if isinstance(signal, int):
            suffix = f"/{signal}"
        assert suffix is not None
        return Request("POST", _join(url, suffix), message.encode() if message else None)
    if kind == "uptime-kuma":
        if signal == "start":
            return None
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("status", "msg", "ping")]
        query += [
            ("status", "up" if ok else "down"),
            ("msg", message or ("OK" if ok else "failed")),
        ]
        query.append(("ping", "" if ms is None else f"{ms:.0f}"))
        return Request("GET", urlunsplit(parts._replace(query=urlencode(query))))
    raise ValueError(f"unknown heartbeat kind {kind!r}")


def _join(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def timeout_for(config: Config, ping: Ping) -> float:
    """The ping's timeout, bounded by the shortest probe interval (and the heartbeat's
    `every`): a listener that never answers cannot hold up the next round."""
    bounds = [ping.timeout, *(s.policy.interval for s in config.sites.values())]
    every = getattr(ping, "every", None)
    if every:
        bounds.append(every)
    return max(0.1, min(bounds))


def send(
    ping: Ping,
    signal: Signal,
    message: str = "",
    *,
    timeout: float,
    ms: float | None = None,
    what: str = "heartbeat",
) -> bool:
    """Send one signal now; True when the target answered 2xx. Never raises; its log line
    never shows the URL."""
    try:
        request = request_for(ping.kind, ping.url.reveal(), signal, message, ms)
        if request is None:
            return True
        req = urllib.request.Request(
            request.url,
            data=request.body,
            method=request.method,
            headers={"User-Agent": "failover-agent", "Content-Type": "text/plain; charset=utf-8"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            response.read(1024)
        return True
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        inner = exc.reason
        reason = inner.__class__.__name__ if isinstance(inner, BaseException) else "URLError"
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.__class__.__name__
    except Exception as exc:  # a bad URL (ValueError, ...): its text holds the URL
        reason = exc.__class__.__name__
    log.warning("%s ping failed: %s (signal: %s)", what, reason, signal)
    return False


def send_later(
    ping: Ping,
    signal: Signal,
    message: str = "",
    *,
    timeout: float,
    ms: float | None = None,
    what: str = "heartbeat",
) -> threading.Thread:
    """Send in a thread of its own; `finish()` waits for the ones still going."""

    def work() -> None:
        send(ping, signal, message, timeout=timeout, ms=ms, what=what)

    thread = threading.Thread(target=work, name=f"{what}-ping", daemon=True)
    with _pending_lock:
        _pending[:] = [t for t in _pending if t.is_alive()]
        _pending.append(thread)
    thread.start()
    return thread


def finish(config: Config, deadline: float | None = None) -> None:
    """Wait for pings still on their way (a one-shot command, before it exits), at most
    their timeout."""
    beat = config.heartbeat
    # a little more than the pings' timeout: a ping that fails says so before we exit
    limit = deadline if deadline is not None else (timeout_for(config, beat) if beat else 10.0) + 1
    end = time.monotonic() + limit
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))


def round_signal(result: RoundResult) -> tuple[Signal, str]:
    """What a round tells the heartbeat: success, or failure when it could judge nothing."""
    if not result.network_ok:
        return "fail", "the agent's own network is down (canaries failed): nothing is judged"
    down = sum(1 for o in result.outcomes if o.after.is_down)
    return "success", (
        f"{len(result.outcomes)} endpoint(s) probed in {result.duration:.1f}s, {down} down"
    )


def heartbeat_hook(ctx: HookContext) -> None:
    """After a round, at most every `heartbeat.every`: signal the heartbeat, in a thread
    of its own (never on the round's path)."""
    beat = ctx.loaded.config.heartbeat
    if beat is None or ctx.result is None:
        return
    now = time.time()
    if now - float(ctx.store.get_meta("heartbeat") or 0) < beat.every:
        return
    ctx.store.set_meta("heartbeat", str(now))
    signal, message = round_signal(ctx.result)
    send_later(
        beat,
        signal,
        message,
        timeout=timeout_for(ctx.loaded.config, beat),
        ms=ctx.result.duration * 1000,
    )
