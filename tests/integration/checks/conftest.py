"""Fixtures for the probe tests: web servers on loopback and in network namespaces, a test
CA trusted through SSL_CERT_FILE, and a tiny DNS responder on loopback.

Namespace fixtures need root: they fail under CI=true and skip elsewhere without it.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_root
from tests.support.netns import NetnsHost, cleanup_leftovers
from tests.support.webserver import TestCA, WebServer

SITE = "shop.test"
INDEX = "<html><title>Shop</title><body>Welcome to the shop</body></html>\n"


# --- web servers ------------------------------------------------------------------------------


@pytest.fixture
def site_root(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(INDEX)
    (root / "big.txt").write_bytes(b"a" * (3 * 1024 * 1024) + b"TAIL")
    return root


@pytest.fixture
def start_web(site_root: Path) -> Iterator[Callable[..., WebServer]]:
    """start_web(**kw) -> a started WebServer (site_root by default); all stopped afterwards."""
    servers: list[WebServer] = []

    def start(**kw: Any) -> WebServer:
        kw.setdefault("root", site_root)
        root = kw.pop("root")
        server = WebServer(root, **kw).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def web(start_web: Callable[..., WebServer]) -> WebServer:
    """Plain HTTP on 127.0.0.1, with the test routes."""
    return start_web()


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def trust_test_ca(test_ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> TestCA:
    """Make the probes (OpenSSL's default verify paths) trust the test CA only."""
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.cert_path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return test_ca


# --- network namespaces -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def netns_session() -> Iterator[None]:
    require_root()
    cleanup_leftovers()
    yield
    cleanup_leftovers()


@pytest.fixture
def make_netns_host(netns_session: None) -> Iterator[Callable[[], NetnsHost]]:
    hosts: list[NetnsHost] = []

    def make() -> NetnsHost:
        host = NetnsHost().create()
        hosts.append(host)
        return host

    yield make
    for host in reversed(hosts):
        host.destroy()


@pytest.fixture
def netns_host(make_netns_host: Callable[[], NetnsHost]) -> NetnsHost:
    """One namespace 'VPS' reachable at .ip; outages via .blackhole(), .reset(port), ..."""
    return make_netns_host()


# --- DNS --------------------------------------------------------------------------------------


class DnsResponder:
    """Answers from a dict {(name, rdtype): [values]} over UDP and TCP on one loopback port.
    Names in `servfail` get SERVFAIL, names in `silent` get no answer, others NXDOMAIN."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {
            (n.lower().rstrip(".") + ".", t.upper()): v for (n, t), v in records.items()
        }
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.queries = 0
        self._servers: list[socketserver.BaseServer] = []
        self.port = 0

    def answer(self, wire: bytes) -> bytes | None:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        self.queries += 1
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if name.rstrip(".") in self.silent:
            return None
        if name.rstrip(".") in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in self.records:
            response.answer.append(
                dns.rrset.from_text_list(name, 60, "IN", rdtype, self.records[(name, rdtype)])
            )
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def start(self) -> DnsResponder:
        responder = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = responder.answer(data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                head = conn.recv(2)
                if len(head) < 2:
                    return
                size = int.from_bytes(head, "big")
                data = b""
                while len(data) < size:
                    chunk = conn.recv(size - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = responder.answer(data)
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)

        for _ in range(50):
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
            port = udp.server_address[1]
            try:
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        udp.daemon_threads = tcp.daemon_threads = True
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def dns_responder() -> Iterator[DnsResponder]:
    responder = DnsResponder(
        {
            (SITE, "A"): ["10.0.0.10", "10.0.0.11"],
            (SITE, "TXT"): ['"v=spf1 -all"'],
            ("alias.test", "CNAME"): ["shop.test."],
        }
    ).start()
    responder.servfail.add("broken.test")
    responder.silent.add("silent.test")
    yield responder
    responder.stop()
