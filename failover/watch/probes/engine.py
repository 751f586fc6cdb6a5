"""The probe engine: `probe` runs one check against one address, `probe_all` a whole round
concurrently, `run_probes` a round in a fresh event loop (what the agent and the steps call).

Site checks always go to an endpoint's own address (never through DNS), with the site's
name as HTTP Host, TLS SNI and the name the certificate is verified against. Every probe
has its own hard deadline (`check.timeout`, covering connect, TLS, request and body), so
one slow or blackholed endpoint never delays the others, and no exception ever leaves
`probe_all`: a failure is a failed ProbeResult with a one-line detail.

Only the standard library and this package are imported at module level (start-up time
of the CLI); dnspython, icmplib and cryptography are imported by the probes that need them.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from failover.watch.probes.common import ProbeState, describe_error
from failover.watch.probes.dns import probe_dns
from failover.watch.probes.http import probe_http
from failover.watch.probes.icmp import probe_icmp
from failover.watch.probes.result import ProbeResult, secs
from failover.watch.probes.ssh import probe_ssh
from failover.watch.probes.tcp import probe_tcp

if TYPE_CHECKING:
    from failover.config.models import DnsCheck, HttpCheck, IcmpCheck, SshCheck, TcpCheck

    AnyCheck = HttpCheck | TcpCheck | IcmpCheck | DnsCheck | SshCheck

K = TypeVar("K", bound=Hashable)


async def probe(check: AnyCheck, address: str, hostname: str | None) -> ProbeResult:
    """Probe `address` (an IP; canaries may give a host name) with one check.

    Never raises (except for cancellation from outside): timeouts and errors become a
    failed result. The whole probe is bounded by `check.timeout`.
    """
    label = _label(check)
    state = ProbeState()
    try:
        async with asyncio.timeout(check.timeout):
            if check.type in ("http", "https"):
                return await probe_http(check, address, hostname, state)
            if check.type == "tcp":
                return await probe_tcp(check, address, state)
            if check.type == "icmp":
                return await probe_icmp(check, address, state)
            if check.type == "dns":
                return await probe_dns(check, address, state)
            if check.type == "ssh":
                return await probe_ssh(check, address, state)
            return ProbeResult(label, False, None, f"unknown check type {check.type!r}")
    except TimeoutError:
        phase = f" ({state.phase})" if state.phase else ""
        detail = f"timeout after {secs(check.timeout)}{phase}"
        return ProbeResult(label, False, None, detail, state.warning)
    except Exception as exc:  # every failure is a result, never an exception
        return ProbeResult(label, False, None, describe_error(exc), state.warning)


async def probe_all(
    targets: Sequence[tuple[K, AnyCheck, str, str | None]], *, concurrency: int = 2000
) -> dict[K, ProbeResult]:
    """Run every (key, check, address, hostname) concurrently, at most `concurrency` at once.

    Each probe's deadline starts when it starts. Never raises for a probe's failure.
    """
    if not targets:
        return {}
    limit = max(1, min(concurrency, _fd_budget(min(concurrency, len(targets)))))
    sem = asyncio.Semaphore(limit)

    async def one(check: AnyCheck, address: str, hostname: str | None) -> ProbeResult:
        async with sem:
            return await probe(check, address, hostname)

    tasks = [asyncio.create_task(one(check, addr, host)) for _, check, addr, host in targets]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    results: dict[K, ProbeResult] = {}
    for (key, check, _, _), outcome in zip(targets, done, strict=True):
        if isinstance(outcome, ProbeResult):
            results[key] = outcome
        else:  # only possible for BaseExceptions such as a cancellation
            results[key] = ProbeResult(_label(check), False, None, describe_error(outcome))
    return results


def run_probes(
    targets: Sequence[tuple[K, AnyCheck, str, str | None]], **kw: Any
) -> dict[K, ProbeResult]:
    """Synchronous wrapper: one round in a fresh event loop. The cyclic garbage collector
    waits until the round is over: a round allocates many short-lived objects (tasks,
    futures, transports), and collections while they are alive cost a fifth of its CPU."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return asyncio.run(probe_all(targets, **kw))
    finally:
        if collecting:
            gc.enable()


def _label(check: Any) -> str:
    try:
        return str(check.label)
    except Exception:
        return str(getattr(check, "type", "check"))


def _fd_budget(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE so that `wanted` probes can hold a socket each;
    returns how many concurrent probes the limit allows."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return wanted
    reserve = 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve))
