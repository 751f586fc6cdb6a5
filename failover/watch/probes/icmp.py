"""The icmp probe: echo requests over one raw socket per event loop and address family
(_Pinger), or, without the privilege for raw sockets, icmplib's unprivileged datagram
sockets (imported only then). The packets themselves are built and parsed in wire.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import struct
import time
from typing import TYPE_CHECKING, ClassVar

from failover.watch.probes.common import ProbeError, ProbeState, is_ip
from failover.watch.probes.result import ProbeResult, fmt_ms
from failover.watch.probes.wire import echo_request, parse_echo_reply

if TYPE_CHECKING:
    from failover.config.models import IcmpCheck

_ECHO_INTERVAL = 0.2


class _Pinger:
    """One raw ICMP socket per event loop and address family, shared by every ping of a
    round: replies are matched to their probe by (address, identifier, sequence).

    (A raw socket per ping, as icmplib opens, gets a copy of every reply on the machine:
    at a few hundred concurrent pings the copies overflow the sockets' buffers and
    healthy hosts appear to lose packets.)
    """

    _live: ClassVar[dict[tuple[int, int], _Pinger]] = {}
    _next_ident = (os.getpid() * 7919) & 0xFFFF

    def __init__(self, loop: asyncio.AbstractEventLoop, family: int) -> None:
        self.loop = loop
        self.family = family
        self.v6 = family == socket.AF_INET6
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        self.sock = socket.socket(family, socket.SOCK_RAW, proto)
        self.sock.setblocking(False)
        for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # *BUFFORCE
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, 4 * 1024 * 1024)
            except OSError:
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        with contextlib.suppress(OSError):  # let only echo replies in
            if self.v6:
                words = [0xFFFFFFFF] * 8
                words[129 >> 5] &= ~(1 << (129 & 31))
                self.sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("8I", *words))
            else:
                self.sock.setsockopt(255, 1, struct.pack("I", ~1 & 0xFFFFFFFF))
        self.waiters: dict[tuple[str, int, int], asyncio.Future[float]] = {}
        self.users = 0
        loop.add_reader(self.sock.fileno(), self._readable)

    @classmethod
    def acquire(cls, family: int) -> _Pinger:
        loop = asyncio.get_running_loop()
        key = (id(loop), family)
        pinger = cls._live.get(key)
        if pinger is None:
            pinger = cls._live[key] = cls(loop, family)
        pinger.users += 1
        return pinger

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self._live.pop((id(self.loop), self.family), None)
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    @classmethod
    def new_ident(cls) -> int:
        cls._next_ident = (cls._next_ident + 1) & 0xFFFF
        return cls._next_ident

    def _readable(self) -> None:
        now = time.perf_counter()
        for _ in range(10000):
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            parsed = parse_echo_reply(data, self.v6)
            if parsed is None:
                continue
            source = str(addr[0]).split("%", 1)[0]
            fut = self.waiters.get((source, *parsed))
            if fut is not None and not fut.done():
                fut.set_result(now)

    async def ping(
        self, address: str, count: int, interval: float, deadline: float
    ) -> list[float | None]:
        """Send `count` echoes `interval` apart; the round-trip time of each (None: lost)
        once all are answered or at `deadline` (a perf_counter time)."""
        ident = self.new_ident()
        sent: list[tuple[float, asyncio.Future[float]]] = []
        try:
            for seq in range(count):
                if seq:
                    await asyncio.sleep(interval)
                fut: asyncio.Future[float] = self.loop.create_future()
                self.waiters[(address, ident, seq)] = fut
                packet = echo_request(ident, seq, self.v6)
                start = time.perf_counter()
                await self.loop.sock_sendto(self.sock, packet, (address, 0))
                sent.append((start, fut))
            remaining = deadline - time.perf_counter()
            if remaining > 0:
                await asyncio.wait([f for _, f in sent], timeout=remaining)
        finally:
            for seq in range(count):
                self.waiters.pop((address, ident, seq), None)
        return [
            (f.result() - start) * 1000.0 if f.done() and not f.cancelled() else None
            for start, f in sent
        ]


async def probe_icmp(check: IcmpCheck, address: str, state: ProbeState) -> ProbeResult:
    state.phase = "ping"
    count = check.count
    interval = min(_ECHO_INTERVAL, check.timeout / (4 * count))
    loop = asyncio.get_running_loop()
    if not is_ip(address):  # canaries may name their host
        state.phase = "resolving the host's name"
        infos = await loop.getaddrinfo(address, None, type=socket.SOCK_RAW)
        address = str(infos[0][4][0])
        state.phase = "ping"
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    # Leave a little of the deadline to report the loss rather than a timeout.
    deadline = time.perf_counter() + check.timeout * 0.9
    try:
        pinger = _Pinger.acquire(family)
    except PermissionError:
        rtts = await _ping_unprivileged(address, count, interval, check.timeout * 0.9)
    else:
        try:
            rtts = await pinger.ping(str(ip), count, interval, deadline)
        finally:
            pinger.release()
    answered = [r for r in rtts if r is not None]
    sent = len(rtts)
    loss = 1.0 - len(answered) / sent if sent else 1.0
    ok = bool(answered) and loss <= check.max_loss
    if answered:
        avg = sum(answered) / len(answered)
        latency: float | None = round(avg, 3)
        detail = f"{len(answered)}/{sent} replies, avg {fmt_ms(avg)}"
    else:
        latency = None
        detail = f"no reply to {sent} echo requests"
    if not ok and answered:
        detail = f"{loss:.0%} loss ({detail})"
    return ProbeResult(check.label, ok, latency, detail)


async def _ping_unprivileged(
    address: str, count: int, interval: float, budget: float
) -> list[float | None]:
    """Without raw sockets: icmplib's ICMP datagram sockets (net.ipv4.ping_group_range),
    which the kernel demultiplexes per socket."""
    from icmplib import SocketPermissionError, async_ping

    per_echo = max(0.05, (budget - (count - 1) * interval) / count)
    try:
        host = await async_ping(
            address, count=count, interval=interval, timeout=per_echo, privileged=False
        )
    except SocketPermissionError:
        raise ProbeError(
            "ICMP not permitted: run as root, give CAP_NET_RAW, or allow this group in "
            "net.ipv4.ping_group_range"
        ) from None
    rtts: list[float | None] = [float(r) for r in host.rtts]
    return rtts + [None] * (host.packets_sent - len(rtts))
