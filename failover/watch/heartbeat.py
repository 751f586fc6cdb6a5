"""The heartbeat: after rounds, at most every `heartbeat.every`, the agent fetches a URL of
the user's (healthchecks.io, Uptime Kuma push), so that its own death is noticed by
someone else. A failed ping is a warning, never an error, and never shows the URL."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.hooks import HookContext
    from failover.store import Store

log = get_logger("heartbeat")


def heartbeat_hook(ctx: HookContext) -> None:
    """After a round, at most every `heartbeat.every`: fetch the heartbeat URL (the agent is
    alive and its rounds complete). A failed ping is logged, never raised."""
    beat = ctx.loaded.config.heartbeat
    if beat is None or ctx.result is None:
        return
    now = time.time()
    if now - float(ctx.store.get_meta("heartbeat") or 0) < beat.every:
        return
    ctx.store.set_meta("heartbeat", str(now))
    url, timeout = beat.url.reveal(), beat.timeout

    def ping(_store: Store) -> None:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "failover-agent"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(1024)
        except (OSError, urllib.error.URLError) as exc:
            # The URL holds a token: name the failure, never the URL.
            log.warning("heartbeat ping failed: %s", exc.__class__.__name__)

    ctx.spawn("heartbeat", ping)
