"""The tcp probe: a TCP connect to the endpoint's address and the check's port."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from failover.watch.probes.common import ProbeState
from failover.watch.probes.result import ProbeResult, fmt_ms, ms

if TYPE_CHECKING:
    from failover.config.models import TcpCheck


async def probe_tcp(check: TcpCheck, address: str, state: ProbeState) -> ProbeResult:
    state.phase = "connect"
    start = time.perf_counter()
    _, writer = await asyncio.open_connection(address, check.port)
    elapsed = time.perf_counter() - start
    writer.close()
    latency = ms(elapsed)
    return ProbeResult(check.label, True, latency, f"TCP connect in {fmt_ms(latency)}")
