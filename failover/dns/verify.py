"""Verifying a DNS change where it counts: every authoritative nameserver of the zone is
asked directly (dnspython, recursion off, authoritative answers only) until all of them
serve the new values or a deadline passes; resolvers the user names are asked once at the
end (informational: their caches follow the old TTL). Network I/O; dnspython loads lazily.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from failover.errors import ProviderError
from providers.dns.base import RecordKey, RecordSet, normalize_value, one_line


@dataclass
class ServerAnswer:
    server: str
    name: str
    rtype: str
    values: list[str] | None = None
    ttl: int | None = None
    ok: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    ok: bool
    seconds: float
    answers: list[ServerAnswer]
    resolvers: list[ServerAnswer] = field(default_factory=list)

    @property
    def failing(self) -> list[ServerAnswer]:
        return [a for a in self.answers if not a.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": self.seconds,
            "answers": [a.to_dict() for a in self.answers],
            "resolvers": [a.to_dict() for a in self.resolvers],
        }


def parse_servers(items: Iterable[str]) -> list[tuple[str, int]]:
    from failover.config.dns import parse_server

    return [parse_server(item) for item in items]


def find_nameservers(
    zone: str,
    configured: Sequence[str] | None,
    timeout: float = 5.0,
    *,
    resolver_address: tuple[str, int] | None = None,
) -> list[tuple[str, int]]:
    """The zone's authoritative servers as (address, port): the configured list when given,
    else the zone's NS records resolved to addresses through the system resolver (or the
    server at `resolver_address`)."""
    if configured:
        return parse_servers(configured)
    import dns.exception
    import dns.resolver

    if resolver_address is None:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [resolver_address[0]]
        resolver.port = resolver_address[1]
    resolver.lifetime = timeout
    try:
        ns_names = sorted(str(r.target) for r in resolver.resolve(zone + ".", "NS"))
    except dns.exception.DNSException as exc:
        raise ProviderError(
            f"cannot look up the nameservers of {zone}: {one_line(exc)}",
            hint="set dns.nameservers in the site to list them",
        ) from None
    servers: list[tuple[str, int]] = []
    for ns in ns_names:
        for rtype in ("A", "AAAA"):
            try:
                servers.extend((str(a), 53) for a in resolver.resolve(ns, rtype))
            except dns.exception.DNSException:
                continue
    if not servers:
        raise ProviderError(f"the nameservers of {zone} ({', '.join(ns_names)}) have no address")
    return servers


def ask(
    server: tuple[str, int], key: RecordKey, timeout: float, recursive: bool = False
) -> ServerAnswer:
    """One query of `key` to one server, directly."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    host, port = server
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    answer = ServerAnswer(label, key.name, key.rtype)
    query = dns.message.make_query(key.name + ".", key.rtype)
    if not recursive:
        query.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(query, host, port=port, timeout=timeout)
    except dns.exception.Timeout:
        answer.error = f"no answer within {timeout:g}s"
        return answer
    except (OSError, dns.exception.DNSException) as exc:
        answer.error = one_line(exc)
        return answer
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        answer.error = dns.rcode.to_text(rcode)
        return answer
    if not recursive and not response.flags & dns.flags.AA:
        answer.error = "not authoritative for the zone"
        return answer
    rdtype = dns.rdatatype.from_text(key.rtype)
    values: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype == rdtype and rrset.name.to_text().rstrip(".").lower() == key.name:
            values = sorted({normalize_value(key.rtype, rd.to_text()) for rd in rrset})
            answer.ttl = rrset.ttl
    answer.values = values
    return answer


def verify_dns(
    expected: Sequence[RecordSet],
    nameservers: Sequence[tuple[str, int]],
    deadline: float,
    *,
    resolvers: Sequence[tuple[str, int]] = (),
    interval: float = 0.1,
    query_timeout: float = 2.0,
) -> VerifyReport:
    """Ask every nameserver for every record until all serve the expected values, or until
    `deadline` seconds have passed. Resolvers, when given, are asked once at the end."""
    started = time.monotonic()
    end = started + max(0.0, deadline)
    pending = [(server, rs) for server in nameservers for rs in expected]
    results: dict[tuple[tuple[str, int], RecordKey], ServerAnswer] = {}
    pool = ThreadPoolExecutor(max_workers=min(8, max(1, len(pending))))
    try:
        while True:
            timeout = max(0.2, min(query_timeout, end - time.monotonic()))
            futures = {
                (server, rs.key): pool.submit(ask, server, rs.key, timeout)
                for server, rs in pending
            }
            wanted = {rs.key: rs for _, rs in pending}
            still: list[tuple[tuple[str, int], RecordSet]] = []
            for (server, key), future in futures.items():
                answer = future.result()
                rs = wanted[key]
                answer.ok = answer.error is None and set(answer.values or []) == set(rs.values)
                results[(server, key)] = answer
                if not answer.ok:
                    still.append((server, rs))
            pending = still
            if not pending or time.monotonic() >= end:
                break
            time.sleep(min(interval, max(0.0, end - time.monotonic())))
        resolver_answers: list[ServerAnswer] = []
        for server in resolvers:
            for rs in expected:
                a = ask(server, rs.key, query_timeout, recursive=True)
                a.ok = a.error is None and set(a.values or []) == set(rs.values)
                resolver_answers.append(a)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    ordered = [results[(s, rs.key)] for s in nameservers for rs in expected]
    return VerifyReport(
        ok=all(a.ok for a in ordered) and bool(ordered),
        seconds=round(time.monotonic() - started, 4),
        answers=ordered,
        resolvers=resolver_answers,
    )


def format_verify(report: VerifyReport) -> list[str]:
    """The report as lines for a person: one per server and record."""
    lines = []
    for a in report.answers + report.resolvers:
        seen = a.error or (",".join(a.values or []) or "(no record)")
        ttl = f" ttl {a.ttl}" if a.ttl is not None else ""
        mark = "ok " if a.ok else "OLD" if a.error is None else "ERR"
        lines.append(f"  {mark} {a.server} {a.name} {a.rtype}: {seen}{ttl}")
    return lines
