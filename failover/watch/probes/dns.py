"""The dns probe: one query to the endpoint's address (a DNS server), answer checked
against the expected values. dnspython is imported by the probe, not at module level.

(This module is failover.watch.probes.dns; `import dns.message` below is dnspython, as
imports are absolute.)
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from failover.watch.probes.common import ProbeState, is_ip
from failover.watch.probes.result import ProbeResult, fmt_ms, ms, short

if TYPE_CHECKING:
    from failover.config.models import DnsCheck


def _norm_dns(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.rstrip(".").lower()


async def probe_dns(check: DnsCheck, address: str, state: ProbeState) -> ProbeResult:
    import dns.asyncquery
    import dns.message
    import dns.rcode
    import dns.rdatatype

    label = check.label
    if not is_ip(address):  # canaries may name their server
        state.phase = "resolving the server's name"
        infos = await asyncio.get_running_loop().getaddrinfo(address, check.port)
        address = str(infos[0][4][0])
    query = dns.message.make_query(check.query, dns.rdatatype.from_text(check.rdtype))
    state.phase = "query"
    start = time.perf_counter()
    # dnspython's own timeout is a backstop: the probe's deadline fires first.
    backstop = check.timeout + 1
    if check.protocol == "tcp":
        response = await dns.asyncquery.tcp(query, address, timeout=backstop, port=check.port)
    else:
        response, _ = await dns.asyncquery.udp_with_fallback(
            query, address, timeout=backstop, port=check.port
        )
    latency = ms(time.perf_counter() - start)
    rcode = response.rcode()
    rname = dns.rcode.to_text(rcode)
    if rcode != dns.rcode.NOERROR:
        return ProbeResult(label, False, latency, f"{rname} for {check.query} {check.rdtype}")
    wanted = dns.rdatatype.from_text(check.rdtype)
    values = sorted(
        rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset
    )
    if not values:
        return ProbeResult(
            label, False, latency, f"NOERROR but no {check.rdtype} answer for {check.query}"
        )
    got = ", ".join(values[:4]) + (" ..." if len(values) > 4 else "")
    if check.expect:
        have = {_norm_dns(v) for v in values}
        missing = [e for e in check.expect if _norm_dns(e) not in have]
        if missing:
            return ProbeResult(
                label, False, latency, f"answer lacks {', '.join(missing)} (got {short(got, 80)})"
            )
    return ProbeResult(label, True, latency, f"{rname} in {fmt_ms(latency)}: {short(got, 80)}")
