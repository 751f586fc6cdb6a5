"""The probes against real servers: on loopback, and in network namespaces with real
outages (blackhole, TCP reset, server stopped, link down). Traffic goes only to
127.0.0.0/8 and to the test's own namespaces."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.config.models import DnsCheck, HttpCheck, IcmpCheck, TcpCheck
from failover.watch.probes.engine import run_probes
from failover.watch.probes.result import ProbeResult
from tests.support import free_port, require, require_root
from tests.support.netns import NetnsHost, cleanup_leftovers
from tests.support.webserver import TestCA, WebServer

from .conftest import SITE, DnsResponder

LOOPBACK = "127.0.0.1"

pytestmark = pytest.mark.integration


def http(port: int, **kw: Any) -> HttpCheck:
    kw.setdefault("timeout", 2)
    return HttpCheck(type="http", port=port, **kw)


def https(port: int, **kw: Any) -> HttpCheck:
    kw.setdefault("timeout", 2)
    return HttpCheck(type="https", port=port, **kw)


def one(check: Any, address: str = LOOPBACK, hostname: str | None = SITE) -> ProbeResult:
    return run_probes([("k", check, address, hostname)])["k"]


# --- a raw TCP server that answers whatever the test says -------------------------------------


class RawServer:
    """Accepts on loopback, records each request head, sends `reply` (or nothing when None)
    and closes (or holds the connection open when `hold`)."""

    def __init__(self, reply: bytes | None, hold: bool = False, at_once: bool = False) -> None:
        self.reply = reply
        self.hold = hold
        self.at_once = at_once  # answer without waiting for a request
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        conn.settimeout(5)
        try:
            while not self.at_once and b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.requests.append(data)
            if self.reply is not None:
                conn.sendall(self.reply)
            if not self.hold:
                conn.close()
        except OSError:
            pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(reply: bytes | None, hold: bool = False, at_once: bool = False) -> RawServer:
        server = RawServer(reply, hold, at_once)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


# --- HTTP on loopback -------------------------------------------------------------------------


def test_http_ok_with_body_match(web: WebServer) -> None:
    result = one(http(web.port, expect_body="Welcome to the shop"))
    assert result.ok, result
    assert result.check == f"http:{web.port}"
    assert result.detail.startswith("HTTP 200 in ")
    assert result.latency_ms is not None and 0 < result.latency_ms < 2000
    assert result.warning is None


def test_http_body_mismatch(web: WebServer) -> None:
    result = one(http(web.port, expect_body="Out of stock"))
    assert not result.ok
    assert result.detail == "body lacks 'Out of stock'"
    assert result.latency_ms is not None


def test_http_body_regex(web: WebServer) -> None:
    assert one(http(web.port, expect_body_regex=r"<title>Sh.p</title>")).ok
    result = one(http(web.port, expect_body_regex=r"^nothing$"))
    assert not result.ok
    assert result.detail == "body does not match /^nothing$/"


def test_http_wrong_status(web: WebServer) -> None:
    result = one(http(web.port, path="/_fot/status/503"))
    assert not result.ok
    assert result.detail == "status 503 not in [2xx, 3xx]"
    missing = one(http(web.port, path="/no-such-page"))
    assert missing.detail == "status 404 not in [2xx, 3xx]"
    assert one(http(web.port, path="/no-such-page", expect_status=[404])).ok
    assert one(http(web.port, path="/_fot/status/503", expect_status=["500-503"])).ok


def test_http_head_and_chunked_and_healthz(web: WebServer) -> None:
    assert one(http(web.port, method="HEAD")).ok
    assert one(http(web.port, path="/_fot/chunked", expect_body="hello chunked world")).ok
    assert one(http(web.port, path="/healthz", expect_body="ok", expect_status=[200])).ok


def test_http_large_body_is_read_up_to_the_limit(web: WebServer) -> None:
    assert one(http(web.port, path="/big.txt", expect_body="aaaa")).ok
    # The tail lies past the 1 MiB limit: it is never read.
    result = one(http(web.port, path="/big.txt", expect_body="TAIL"))
    assert result.detail == "body lacks 'TAIL'"


def test_http_max_latency(web: WebServer) -> None:
    result = one(http(web.port, path="/_fot/delay/0.3", max_latency=0.1))
    assert not result.ok
    assert result.detail.startswith("HTTP 200 in ")
    assert result.detail.endswith("slower than 0.1s")
    assert one(http(web.port, path="/_fot/delay/0.05", max_latency=1)).ok


def test_http_does_not_follow_redirects(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(
        b"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.2:9/\r\nContent-Length: 0\r\n\r\n"
    )
    assert one(http(server.port)).detail.startswith("HTTP 301")
    assert not one(http(server.port, expect_status=[200])).ok
    assert len(server.requests) == 2


def test_http_request_carries_host_agent_and_extra_headers(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert one(http(server.port, path="/x?y=1", headers={"X-Probe": "yes"})).ok
    request = server.requests[0].decode()
    lines = request.split("\r\n")
    assert lines[0] == "GET /x?y=1 HTTP/1.1"
    assert f"Host: {SITE}:{server.port}" in lines
    assert "User-Agent: failover-probe/0.1" in lines
    assert "Connection: close" in lines
    assert "X-Probe: yes" in lines


def test_http_read_until_close_and_truncated_length(raw_server: Callable[..., RawServer]) -> None:
    until_close = raw_server(b"HTTP/1.0 200 OK\r\n\r\nbody without length")
    assert one(http(until_close.port, expect_body="without length")).ok
    truncated = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
    result = one(http(truncated.port))
    assert not result.ok
    assert result.detail == "bad response: connection closed after 5 of 100 body bytes"


def test_http_garbage_and_silence(raw_server: Callable[..., RawServer]) -> None:
    garbage = raw_server(b"SSH-2.0-OpenSSH_9.2p1\r\n\r\n")
    result = one(http(garbage.port))
    assert not result.ok
    assert result.detail.startswith("bad response: not an HTTP status line")
    closed = raw_server(b"")
    assert one(http(closed.port)).detail == "bad response: connection closed without a response"
    silent = raw_server(None, hold=True)
    started = time.monotonic()
    result = one(http(silent.port, timeout=0.5))
    assert 0.45 <= time.monotonic() - started < 1.5
    assert result.detail == "timeout after 0.5s (waiting for the response)"
    assert result.latency_ms is None


def test_tcp_ok_and_refused(web: WebServer) -> None:
    ok = one(TcpCheck(type="tcp", port=web.port, timeout=1))
    assert ok.ok and ok.detail.startswith("TCP connect in ")
    closed_port = free_port()
    refused = one(TcpCheck(type="tcp", port=closed_port, timeout=1))
    assert not refused.ok
    assert refused.detail == "connection refused"
    assert refused.latency_ms is None
    assert one(http(closed_port)).detail == "connection refused"


# --- HTTPS ------------------------------------------------------------------------------------


def test_https_verified_against_the_site_name(
    trust_test_ca: TestCA, start_web: Callable[..., WebServer]
) -> None:
    cert = trust_test_ca.issue(SITE, days=90)
    server = start_web(cert=cert.cert, key=cert.key)
    result = one(https(server.port, expect_body="Welcome"))
    assert result.ok, result
    assert result.warning is None
    mismatch = one(https(server.port), hostname="other.test")
    assert not mismatch.ok
    assert mismatch.detail.startswith("TLS: certificate verify failed: Hostname mismatch")


def test_https_untrusted_ca_fails_unless_verification_is_off(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, start_web: Callable[..., WebServer]
) -> None:
    other_ca = TestCA(tmp_path / "other-ca")
    cert = other_ca.issue(SITE, days=3)
    server = start_web(cert=cert.cert, key=cert.key)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))
    result = one(https(server.port))
    assert not result.ok
    assert result.detail.startswith("TLS: certificate verify failed: ")
    assert "unable to get local issuer certificate" in result.detail
    unverified = one(https(server.port, tls_verify=False))
    assert unverified.ok, unverified
    assert one(https(server.port, tls_verify=False), hostname="other.test").ok
    # The expiry is still read (from the DER, without verification).
    assert unverified.warning is not None
    assert unverified.warning.startswith(f"certificate for {SITE} expires in ")


def test_https_expiry_warning_within_the_window(
    trust_test_ca: TestCA, start_web: Callable[..., WebServer]
) -> None:
    cert = trust_test_ca.issue(SITE, days=5.5)
    server = start_web(cert=cert.cert, key=cert.key)
    result = one(https(server.port))
    assert result.ok
    day = cert.not_after.strftime("%Y-%m-%d")
    assert result.warning == f"certificate for {SITE} expires in 5 days ({day})"
    assert one(https(server.port, tls_expiry_warn=2 * 86400)).warning is None


def test_https_expired_certificate(
    trust_test_ca: TestCA, start_web: Callable[..., WebServer]
) -> None:
    cert = trust_test_ca.issue(SITE, days=-2.5, not_before_days=-30)
    server = start_web(cert=cert.cert, key=cert.key)
    verified = one(https(server.port))
    assert not verified.ok
    assert verified.detail == "TLS: certificate verify failed: certificate has expired"
    unverified = one(https(server.port, tls_verify=False))
    assert unverified.ok
    assert unverified.warning is not None
    assert unverified.warning.startswith(f"certificate for {SITE} expired 2 days ago")


def test_https_against_plain_http_is_a_tls_failure(trust_test_ca: TestCA, web: WebServer) -> None:
    result = one(https(web.port))
    assert not result.ok
    assert result.detail.startswith("TLS: ")


def test_https_server_closing_or_silent_during_the_handshake(
    raw_server: Callable[..., RawServer],
) -> None:
    closing = raw_server(b"", at_once=True)
    # Closed (FIN) or reset (RST, when the ClientHello was already there): timing decides.
    assert one(https(closing.port)).detail in (
        "TLS: connection closed during the handshake",
        "TLS: connection reset during the handshake",
    )
    silent = raw_server(None, hold=True, at_once=True)
    assert one(https(silent.port, timeout=0.5)).detail == "timeout after 0.5s (TLS handshake)"


# --- DNS --------------------------------------------------------------------------------------


def dns_check(responder: DnsResponder, **kw: Any) -> DnsCheck:
    kw.setdefault("timeout", 1)
    kw.setdefault("query", SITE)
    return DnsCheck(type="dns", port=responder.port, **kw)


def test_dns_answers(dns_responder: DnsResponder) -> None:
    result = one(dns_check(dns_responder))
    assert result.ok, result
    assert result.detail.startswith("NOERROR in ")
    assert "10.0.0.10" in result.detail
    assert one(dns_check(dns_responder, expect=["10.0.0.11", "10.0.0.10"])).ok
    assert one(dns_check(dns_responder, protocol="tcp", expect=["10.0.0.10"])).ok
    assert one(dns_check(dns_responder, rdtype="TXT", expect=["v=spf1 -all"])).ok
    cname = dns_check(dns_responder, query="alias.test", rdtype="CNAME", expect=["shop.test"])
    assert one(cname).ok


def test_dns_failures(dns_responder: DnsResponder) -> None:
    missing = one(dns_check(dns_responder, expect=["10.0.0.99"]))
    assert not missing.ok
    assert missing.detail == "answer lacks 10.0.0.99 (got 10.0.0.10, 10.0.0.11)"
    nx = one(dns_check(dns_responder, query="nowhere.test"))
    assert not nx.ok and nx.detail == "NXDOMAIN for nowhere.test A"
    servfail = one(dns_check(dns_responder, query="broken.test"))
    assert not servfail.ok and servfail.detail == "SERVFAIL for broken.test A"
    nodata = one(dns_check(dns_responder, rdtype="AAAA"))
    assert not nodata.ok and nodata.detail == f"NOERROR but no AAAA answer for {SITE}"
    started = time.monotonic()
    silent = one(dns_check(dns_responder, query="silent.test", timeout=0.5))
    assert time.monotonic() - started < 1.5
    assert not silent.ok
    assert silent.detail.startswith("timeout after 0.5s")
    refused_port = DnsCheck(type="dns", port=free_port(), query=SITE, protocol="tcp", timeout=1)
    assert one(refused_port).detail == "connection refused"


# --- a round ----------------------------------------------------------------------------------


def test_probe_all_keys_results_and_never_raises(
    web: WebServer, dns_responder: DnsResponder, raw_server: Callable[..., RawServer]
) -> None:
    silent = raw_server(None, hold=True)
    targets: list[tuple[Any, Any, str, str | None]] = [
        (("site", "a"), http(web.port), LOOPBACK, SITE),
        (("site", "b"), http(silent.port, timeout=0.5), LOOPBACK, SITE),
        (("site", "c"), TcpCheck(type="tcp", port=free_port(), timeout=1), LOOPBACK, None),
        (("site", "d"), dns_check(dns_responder), LOOPBACK, None),
        (("site", "e"), http(web.port, headers={"Bad Header": "x"}), LOOPBACK, SITE),
    ]
    results = run_probes(targets, concurrency=2)
    assert set(results) == {key for key, *_ in targets}
    assert results[("site", "a")].ok
    assert results[("site", "b")].detail.startswith("timeout after 0.5s")
    assert results[("site", "c")].detail == "connection refused"
    assert results[("site", "d")].ok
    assert not results[("site", "e")].ok
    assert results[("site", "e")].detail == "ValueError: invalid request header 'Bad Header'"
    assert run_probes([]) == {}


def test_probe_all_runs_concurrently(raw_server: Callable[..., RawServer]) -> None:
    silent = raw_server(None, hold=True)
    targets = [(i, http(silent.port, timeout=0.5), LOOPBACK, SITE) for i in range(50)]
    started = time.monotonic()
    results = run_probes(targets)
    assert time.monotonic() - started < 1.5  # 50 x 0.5 s in parallel, not in series
    assert all(not r.ok for r in results.values())


# --- namespaces: a VPS with real outages ------------------------------------------------------


@pytest.mark.netns
def test_icmp_to_a_namespace_host(netns_host: NetnsHost) -> None:
    check = IcmpCheck(type="icmp", count=3, timeout=1)
    result = one(check, netns_host.ip, None)
    assert result.ok, result
    assert result.detail.startswith("3/3 replies, avg ")
    assert result.latency_ms is not None
    netns_host.blackhole()
    started = time.monotonic()
    down = one(check, netns_host.ip, None)
    assert time.monotonic() - started < 1.5
    assert not down.ok
    assert down.detail == "no reply to 3 echo requests"
    assert down.latency_ms is None
    netns_host.heal()
    assert one(check, netns_host.ip, None).ok


@pytest.mark.netns
def test_namespace_http_and_https(
    netns_host: NetnsHost, trust_test_ca: TestCA, start_web: Callable[..., WebServer]
) -> None:
    cert = trust_test_ca.issue(SITE, days=60)
    plain = start_web(netns=netns_host)
    tls = start_web(netns=netns_host, cert=cert.cert, key=cert.key)
    assert one(http(plain.port, expect_body="Welcome"), netns_host.ip).ok
    result = one(https(tls.port, expect_body="Welcome"), netns_host.ip)
    assert result.ok, result
    assert result.warning is None


@pytest.mark.netns
def test_blackhole_times_out_without_delaying_a_healthy_host(
    make_netns_host: Callable[[], NetnsHost], start_web: Callable[..., WebServer]
) -> None:
    sick, healthy = make_netns_host(), make_netns_host()
    sick_web = start_web(netns=sick)
    healthy_web = start_web(netns=healthy)
    assert one(http(sick_web.port), sick.ip).ok
    sick.blackhole()
    targets: list[tuple[Any, Any, str, str | None]] = [
        ("sick", http(sick_web.port, timeout=1), sick.ip, SITE),
        ("sick-tcp", TcpCheck(type="tcp", port=sick_web.port, timeout=1), sick.ip, None),
        ("healthy", http(healthy_web.port, timeout=1), healthy.ip, SITE),
        ("local", TcpCheck(type="tcp", port=healthy_web.port, timeout=1), healthy.ip, None),
        ("sick-icmp", IcmpCheck(type="icmp", count=2, timeout=1), sick.ip, None),
        ("healthy-icmp", IcmpCheck(type="icmp", count=2, timeout=1), healthy.ip, None),
    ]
    started = time.monotonic()
    results = run_probes(targets)
    elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 1.8
    assert results["sick"].detail == "timeout after 1s (connect)"
    assert results["sick-tcp"].detail == "timeout after 1s (connect)"
    assert results["healthy"].ok, results["healthy"]
    assert results["local"].ok
    assert results["sick-icmp"].detail == "no reply to 2 echo requests"
    assert results["healthy-icmp"].ok, results["healthy-icmp"]
    icmp_latency = results["healthy-icmp"].latency_ms
    assert icmp_latency is not None and icmp_latency < 100
    latency = results["healthy"].latency_ms
    assert latency is not None and latency < 300, latency
    sick.heal()
    assert one(http(sick_web.port), sick.ip).ok


@pytest.mark.netns
def test_tcp_reset_fails_fast(netns_host: NetnsHost, start_web: Callable[..., WebServer]) -> None:
    server = start_web(netns=netns_host)
    netns_host.reset(server.port)
    started = time.monotonic()
    results = run_probes(
        [
            ("http", http(server.port), netns_host.ip, SITE),
            ("tcp", TcpCheck(type="tcp", port=server.port, timeout=2), netns_host.ip, None),
            ("icmp", IcmpCheck(type="icmp", count=1, timeout=1), netns_host.ip, None),
        ]
    )
    assert time.monotonic() - started < 1.0  # well under the 2 s timeout
    assert not results["http"].ok and results["http"].detail == "connection refused"
    assert not results["tcp"].ok and results["tcp"].detail == "connection refused"
    assert results["icmp"].ok  # only the port is reset; the host answers pings
    netns_host.heal()
    assert one(http(server.port), netns_host.ip).ok


@pytest.mark.netns
def test_server_stopped(netns_host: NetnsHost, start_web: Callable[..., WebServer]) -> None:
    server = start_web(netns=netns_host)
    assert one(http(server.port), netns_host.ip).ok
    server.stop()
    result = one(http(server.port), netns_host.ip)
    assert not result.ok
    assert result.detail == "connection refused"


@pytest.mark.netns
def test_link_down(netns_host: NetnsHost, start_web: Callable[..., WebServer]) -> None:
    server = start_web(netns=netns_host)
    check = http(server.port, timeout=1)
    assert one(check, netns_host.ip).ok
    netns_host.link_down()
    # The guard route keeps the subnet's traffic on this machine while the link is down.
    guard = subprocess.run(
        ["ip", "route", "show", "type", "unreachable", "10.213.0.0/16"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "10.213.0.0/16" in guard.stdout
    started = time.monotonic()
    results = run_probes(
        [
            ("http", check, netns_host.ip, SITE),
            ("icmp", IcmpCheck(type="icmp", count=2, timeout=1), netns_host.ip, None),
        ]
    )
    assert time.monotonic() - started < 1.8
    assert not results["http"].ok
    assert results["http"].detail in ("timeout after 1s (connect)", "host unreachable")
    assert not results["icmp"].ok
    netns_host.heal()
    assert one(http(server.port, timeout=2), netns_host.ip).ok


def test_http_and_tcp_over_ipv6_loopback(
    start_web: Callable[..., WebServer], raw_server: Callable[..., RawServer]
) -> None:
    require(socket.has_ipv6, "no IPv6 on this machine")
    try:
        server = start_web(bind="::1")
    except (OSError, TimeoutError) as exc:
        require(False, f"cannot listen on ::1: {exc}")
    result = one(http(server.port, expect_body="Welcome"), "::1", None)
    assert result.ok, result
    assert one(TcpCheck(type="tcp", port=server.port, timeout=1), "::1", None).ok


def test_host_header_defaults_to_the_address(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(b"HTTP/1.1 204 No Content\r\n\r\n")
    result = one(http(server.port), LOOPBACK, None)
    assert result.ok and result.detail.startswith("HTTP 204")
    assert f"Host: {LOOPBACK}:{server.port}" in server.requests[0].decode().split("\r\n")


@pytest.mark.netns
def test_cleanup_leftovers_removes_what_a_crashed_run_left(netns_session: None) -> None:
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; from tests.support.netns import NetnsHost\n"
            "h = NetnsHost().create(); h.blackhole(); print(h.name, flush=True); os._exit(0)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(Path(__file__).resolve().parents[3]),
    )
    name = crashed.stdout.strip()
    assert name.startswith("fot-")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name in listed
    assert name in cleanup_leftovers()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name not in listed
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert f"{name}h" not in links


def test_many_concurrent_pings_lose_nothing() -> None:
    """Hundreds of pings in one round share one raw socket: no false losses."""
    require_root()  # raw ICMP sockets
    check = IcmpCheck(type="icmp", count=2, timeout=2, max_loss=0)
    targets = [(i, check, f"127.0.{1 + i // 250}.{1 + i % 250}", None) for i in range(600)]
    if Path("/proc/net/if_inet6").exists():
        targets.append((600, check, "::1", None))
    started = time.monotonic()
    results = run_probes(targets)
    assert time.monotonic() - started < 1.9
    failed = [r.detail for r in results.values() if not r.ok]
    assert failed == []
    assert all(r.detail.startswith("2/2 replies") for r in results.values())


def test_http_backtracking_regex_cannot_freeze_the_round(
    raw_server: Callable[..., RawServer],
) -> None:
    """`(a+)+$` against 32 a's and a '!' takes Python's re minutes of backtracking (the round,
    and the state lock with it, froze past every deadline): RE2 answers in linear time and
    the probe fails with a clear detail well within its own timeout. Run in a child process
    so that a regression fails this test instead of hanging the suite."""
    body = b"a" * 32 + b"!"
    server = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    code = (
        "import time\n"
        "from failover.config.models import HttpCheck\n"
        "from failover.watch.probes.engine import run_probes\n"
        f"check = HttpCheck(type='http', port={server.port}, timeout=2, "
        "expect_body_regex='(a+)+$')\n"
        "t = time.monotonic()\n"
        "r = run_probes([('k', check, '127.0.0.1', 'shop.test')])['k']\n"
        "print(r.ok, '|', r.detail, '|', round(time.monotonic() - t, 3))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the probe with a backtracking regex did not finish within 30 s")
    assert done.returncode == 0, done.stderr
    ok, detail, _seconds = (part.strip() for part in done.stdout.split("|"))
    assert ok == "False"
    assert detail == "body does not match /(a+)+$/"


def test_ssh_probe_wants_the_servers_banner(raw_server: Callable[..., RawServer]) -> None:
    from failover.config.models import SshCheck

    sshd = raw_server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", at_once=True)
    result = one(SshCheck(type="ssh", port=sshd.port, timeout=2))
    assert result.ok and result.detail.startswith("SSH-2.0-OpenSSH_9.2p1 Debian-2 in "), result
    assert result.check == f"ssh:{sshd.port}"
    smtp = raw_server(b"220 mail.example ESMTP\r\n", at_once=True)
    result = one(SshCheck(type="ssh", port=smtp.port, timeout=2))
    assert not result.ok and result.detail == "connection closed before an SSH banner"
    refused = one(SshCheck(type="ssh", port=free_port(), timeout=2))
    assert not refused.ok and refused.detail == "connection refused"
