"""The ssh probe: the SSH server at the endpoint's address answers with its identification
banner (`SSH-2.0-...`, RFC 4253 4.2). It does not log in: that needs the key and runs a
process (the preflight step does it before a restore)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from failover.watch.probes.common import ProbeError, ProbeState
from failover.watch.probes.result import ProbeResult, fmt_ms, ms, short

if TYPE_CHECKING:
    from failover.config.models import SshCheck

BANNER_LIMIT = 255  # RFC 4253: the identification line is at most 255 characters
_LINES = 20  # lines a server may send before its identification (RFC 4253 allows some)


async def probe_ssh(check: SshCheck, address: str, state: ProbeState) -> ProbeResult:
    state.phase = "connect"
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(address, check.port or 22, limit=4096)
    try:
        state.phase = "waiting for the SSH banner"
        for _ in range(_LINES):
            line = await reader.readline()
            if not line:
                raise ProbeError("connection closed before an SSH banner")
            if line.startswith(b"SSH-"):
                break
        else:
            raise ProbeError("no SSH banner in the server's first lines")
    finally:
        writer.close()
    latency = ms(time.perf_counter() - start)
    banner = line[:BANNER_LIMIT].decode("ascii", errors="replace").strip()
    if not banner.startswith(("SSH-2.0-", "SSH-1.99-")):
        return ProbeResult(check.label, False, latency, f"not SSH 2: {short(banner)!r}")
    return ProbeResult(check.label, True, latency, f"{short(banner)} in {fmt_ms(latency)}")
