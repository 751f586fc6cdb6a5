"""Real DNS servers for tests, each a context manager on loopback with free ports.

- `PowerDnsServer`: PowerDNS authoritative with the sqlite backend and its HTTP API (what
  libcloud's PowerDNS driver talks to).
- `BindServer`: BIND 9 (`named -g`) with a zone that accepts updates signed by a TSIG key.
- `MotoServer`: moto's server mode for the Route 53 API, plus `Route53Nameserver`, a small
  DNS responder that answers from the hosted zones moto holds (moto has no DNS side), so
  that verification by querying "the authoritative servers" is exercised for Route 53 too.

Every class has `start()`/`stop()` (usable to stop a server in the middle of a test and
start it again with its data kept), `set_records()` to change a record behind the tool's
back, `nameserver` ("127.0.0.1:PORT", the authoritative server to verify against) and
`provider_config()` (the entry for `dns_providers:` in a config file). Nothing here
reaches beyond 127.0.0.1; servers are stopped by their own PID.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update

from tests.support import TEST_AWS_ENV, free_port, require_binary, stop_process, wait_for
from tests.support.web import BackgroundServer, relay

ZONE = "example.com"

# Records every test zone starts with (besides SOA and NS): name -> (type, values, ttl).
DEFAULT_RECORDS: dict[tuple[str, str], tuple[list[str], int]] = {
    ("shop.example.com", "A"): (["192.0.2.10"], 60),
    ("www.example.com", "A"): (["192.0.2.10"], 60),
    ("shop.example.com", "AAAA"): (["2001:db8::10"], 60),
    ("other.example.com", "A"): (["192.0.2.99"], 3600),
}


def _soa_ready(port: int, zone: str) -> bool:
    q = dns.message.make_query(zone + ".", "SOA")
    r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=0.5)
    return r.rcode() == dns.rcode.NOERROR and bool(r.answer)


def query(
    port: int, name: str, rtype: str, host: str = "127.0.0.1"
) -> tuple[list[str], int | None]:
    """What the server at host:port answers for name/type: (values, ttl)."""
    q = dns.message.make_query(name.rstrip(".") + ".", rtype)
    r = dns.query.udp(q, host, port=port, timeout=2)
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.from_text(rtype):
            return sorted(rd.to_text() for rd in rrset), rrset.ttl
    return [], None


class _Process:
    """A server process of our own, stopped by its PID."""

    proc: subprocess.Popen[bytes] | None = None
    log_path: Path

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        try:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{type(self).__name__} exited ({self.proc.returncode}):\n{tail}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# --- PowerDNS -------------------------------------------------------------------------------


class PowerDnsServer(_Process):
    """PowerDNS authoritative (gsqlite3 backend) with the HTTP API on loopback."""

    def __init__(
        self,
        zone: str = ZONE,
        records: dict[Any, Any] | None = None,
        api_key: str = "test-pdns-api-key",
    ) -> None:
        self.zone = zone
        self.records = DEFAULT_RECORDS if records is None else records
        self.api_key = api_key
        self.dir = Path(tempfile.mkdtemp(prefix="failover-pdns-"))
        self.log_path = self.dir / "pdns.log"
        self.dns_port = free_port()
        self.api_port = free_port()
        self._prepared = False

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1/servers/localhost"

    def provider_config(self, key_ref: str = "${PDNS_API_KEY}") -> dict[str, Any]:
        return {
            "type": "libcloud",
            "driver": "powerdns",
            "key": key_ref,
            "args": {
                "host": "127.0.0.1",
                "port": self.api_port,
                "secure": False,
                "api_version": "v1",
            },
            "timeout": "5s",
        }

    def _prepare(self) -> None:
        pdns = require_binary("pdns_server")
        schema = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
        if not schema.exists():
            from tests.support import require

            require(False, "pdns-backend-sqlite3 is not installed (tests/setup.sh installs it)")
        import sqlite3

        db = self.dir / "pdns.sqlite3"
        with sqlite3.connect(db) as conn:
            conn.executescript(schema.read_text())
        (self.dir / "pdns.conf").write_text(
            "\n".join(
                [
                    "launch=gsqlite3",
                    f"gsqlite3-database={db}",
                    "local-address=127.0.0.1",
                    f"local-port={self.dns_port}",
                    f"socket-dir={self.dir}",
                    "daemon=no",
                    "guardian=no",
                    "disable-syslog=yes",
                    "webserver=yes",
                    "webserver-address=127.0.0.1",
                    f"webserver-port={self.api_port}",
                    "webserver-allow-from=127.0.0.0/8",
                    "api=yes",
                    f"api-key={self.api_key}",
                    "security-poll-suffix=",
                    "loglevel=4",
                    "",
                ]
            )
        )
        self._pdns = pdns
        self._prepared = True

    def start(self) -> PowerDnsServer:
        first = not self._prepared
        if first:
            self._prepare()
        self._spawn([self._pdns, f"--config-dir={self.dir}"])
        wait_for(
            lambda: self._check_alive() is None and self._api("GET", "") is not None,
            15,
            "PowerDNS API",
        )
        if first:
            self._create_zone()
        wait_for(lambda: _soa_ready(self.dns_port, self.zone), 10, "PowerDNS to serve the zone")
        return self

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.api_url + path,
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read()
        return json.loads(text) if text else {}

    def _create_zone(self) -> None:
        rrsets = [
            {
                "name": f"ns1.{self.zone}.",
                "type": "A",
                "ttl": 3600,
                "records": [{"content": "127.0.0.1", "disabled": False}],
            },
        ]
        for (name, rtype), (values, ttl) in self.records.items():
            rrsets.append(
                {
                    "name": name + ".",
                    "type": rtype,
                    "ttl": ttl,
                    "records": [{"content": v, "disabled": False} for v in values],
                }
            )
        self._api(
            "POST",
            "/zones",
            {
                "name": self.zone + ".",
                "kind": "Native",
                "nameservers": [f"ns1.{self.zone}."],
                "rrsets": rrsets,
            },
        )

    def set_records(self, name: str, rtype: str, values: list[str], ttl: int = 60) -> None:
        """Change a record behind the tool's back (a person in the provider's web UI)."""
        rrset: dict[str, Any] = {"name": name.rstrip(".") + ".", "type": rtype}
        if values:
            rrset.update(
                changetype="REPLACE",
                ttl=ttl,
                records=[{"content": v, "disabled": False} for v in values],
            )
        else:
            rrset["changetype"] = "DELETE"
        self._api("PATCH", f"/zones/{self.zone}.", {"rrsets": [rrset]})

    def get_records(self, name: str, rtype: str) -> tuple[list[str], int | None]:
        return query(self.dns_port, name, rtype)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PowerDnsServer:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# --- BIND -----------------------------------------------------------------------------------


class BindServer(_Process):
    """BIND 9 authoritative for one zone that accepts updates signed by a TSIG key."""

    def __init__(
        self,
        zone: str = ZONE,
        records: dict[Any, Any] | None = None,
        key_name: str = "ddns-key",
        algorithm: str = "hmac-sha256",
    ) -> None:
        self.zone = zone
        self.records = DEFAULT_RECORDS if records is None else records
        self.key_name = key_name
        self.algorithm = algorithm
        self.key_secret = base64.b64encode(os.urandom(32)).decode()
        self.dir = Path(tempfile.mkdtemp(prefix="failover-bind-"))
        self.log_path = self.dir / "named.log"
        self.port = free_port()
        self._prepared = False

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dns_port(self) -> int:
        return self.port

    def write_secret(self, path: Path) -> Path:
        path.write_text(self.key_secret + "\n")
        path.chmod(0o600)
        return path

    def provider_config(self, secret_ref: str = "${DDNS_KEY_SECRET}") -> dict[str, Any]:
        return {
            "type": "rfc2136",
            "server": "127.0.0.1",
            "port": self.port,
            "key_name": self.key_name,
            "key_secret": secret_ref,
            "key_algorithm": self.algorithm,
            "timeout": "3s",
        }

    def _zone_text(self) -> str:
        lines = [
            "$TTL 3600",
            f"@ IN SOA ns1.{self.zone}. hostmaster.{self.zone}. 1 3600 600 86400 60",
            f"@ IN NS ns1.{self.zone}.",
            "ns1 IN A 127.0.0.1",
        ]
        for (name, rtype), (values, ttl) in self.records.items():
            for value in values:
                lines.append(f"{name}. {ttl} IN {rtype} {value}")
        return "\n".join(lines) + "\n"

    def _prepare(self) -> None:
        self._named = require_binary("named")
        (self.dir / "zone.db").write_text(self._zone_text())
        (self.dir / "named.conf").write_text(f"""
key "{self.key_name}" {{ algorithm {self.algorithm}; secret "{self.key_secret}"; }};
options {{
    directory "{self.dir}";
    pid-file "{self.dir}/named.pid";
    session-keyfile "{self.dir}/session.key";
    managed-keys-directory "{self.dir}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ none; }};
}};
controls {{ }};
zone "{self.zone}" {{
    type primary;
    file "{self.dir}/zone.db";
    update-policy {{ grant {self.key_name} zonesub ANY; }};
}};
""")
        self._prepared = True

    def start(self) -> BindServer:
        if not self._prepared:
            self._prepare()
        self._spawn([self._named, "-g", "-c", str(self.dir / "named.conf")])
        wait_for(
            lambda: self._check_alive() is None and _soa_ready(self.port, self.zone),
            15,
            "named to serve the zone",
        )
        return self

    def _update(self) -> dns.update.Update:
        keyring = dns.tsigkeyring.from_text({self.key_name: (self.algorithm, self.key_secret)})
        return dns.update.Update(self.zone + ".", keyring=keyring, keyname=self.key_name)

    def set_records(self, name: str, rtype: str, values: list[str], ttl: int = 60) -> None:
        update = self._update()
        if values:
            update.replace(name.rstrip(".") + ".", ttl, rtype, *values)
        else:
            update.delete(name.rstrip(".") + ".", rtype)
        r = dns.query.tcp(update, "127.0.0.1", port=self.port, timeout=5)
        assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())

    def get_records(self, name: str, rtype: str) -> tuple[list[str], int | None]:
        return query(self.port, name, rtype)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> BindServer:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# --- moto (Route 53) ------------------------------------------------------------------------


def aws_env() -> dict[str, str]:
    """The environment for boto3/moto processes: no metadata service, dummy credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(TEST_AWS_ENV)
    return env


class MotoServer(_Process):
    """moto's server mode on loopback, with one hosted zone holding the test records."""

    def __init__(self, zone: str = ZONE, records: dict[Any, Any] | None = None) -> None:
        self.zone = zone
        self.records = DEFAULT_RECORDS if records is None else records
        self.dir = Path(tempfile.mkdtemp(prefix="failover-moto-"))
        self.log_path = self.dir / "moto.log"
        self.port = free_port()
        self.zone_id: str | None = None
        self.bridge: Route53Nameserver | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def nameserver(self) -> str:
        assert self.bridge is not None
        return self.bridge.nameserver

    def provider_config(self) -> dict[str, Any]:
        return {
            "type": "route53",
            "access_key_id": "${AWS_ACCESS_KEY_ID}",
            "secret_access_key": "${AWS_SECRET_ACCESS_KEY}",
            "endpoint_url": self.endpoint_url,
            "region": "us-east-1",
            "max_attempts": 2,
            "timeout": "5s",
        }

    def client(self) -> Any:
        import boto3

        env = TEST_AWS_ENV
        return boto3.client(
            "route53",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def start(self) -> MotoServer:
        import importlib.util

        from tests.support import require

        require(
            importlib.util.find_spec("moto") is not None
            and importlib.util.find_spec("flask") is not None,
            "moto's server mode is not installed (pip install -e '.[test]')",
        )
        self._spawn(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=aws_env(),
        )
        wait_for(lambda: self._check_alive() is None and self._ping(), 20, "moto server")
        if self.zone_id is None:
            self._create_zone()
        if self.bridge is None:
            self.bridge = Route53Nameserver(self).start()
        return self

    def _ping(self) -> bool:
        with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1) as resp:
            return bool(resp.status == 200)

    def _create_zone(self) -> None:
        c = self.client()
        zone = c.create_hosted_zone(Name=self.zone + ".", CallerReference=str(time.time()))
        self.zone_id = zone["HostedZone"]["Id"].split("/")[-1]
        for (name, rtype), (values, ttl) in self.records.items():
            self.set_records(name, rtype, values, ttl)

    def set_records(self, name: str, rtype: str, values: list[str], ttl: int = 60) -> None:
        c = self.client()
        if values:
            change = {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": name.rstrip(".") + ".",
                    "Type": rtype,
                    "TTL": ttl,
                    "ResourceRecords": [{"Value": v} for v in values],
                },
            }
        else:
            old = self.lookup(name, rtype)
            if old is None:
                return
            change = {"Action": "DELETE", "ResourceRecordSet": old}
        c.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": [change]})

    def lookup(self, name: str, rtype: str) -> dict[str, Any] | None:
        fqdn = name.rstrip(".").lower() + "."
        out = self.client().list_resource_record_sets(
            HostedZoneId=self.zone_id, StartRecordName=fqdn, StartRecordType=rtype, MaxItems="1"
        )
        for rrset in out.get("ResourceRecordSets", []):
            if rrset["Name"].lower() == fqdn and rrset["Type"] == rtype:
                return dict(rrset)
        return None

    def get_records(self, name: str, rtype: str) -> tuple[list[str], int | None]:
        rrset = self.lookup(name, rtype)
        if rrset is None:
            return [], None
        return sorted(r["Value"] for r in rrset.get("ResourceRecords", [])), rrset.get("TTL")

    def cleanup(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> MotoServer:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class Route53Nameserver:
    """Answers DNS queries (UDP and TCP, 127.0.0.1) from the records moto's Route 53 holds.

    moto has no DNS side; this stands in for Route 53's nameservers so that verification by
    querying every authoritative server runs against Route 53 data in tests as it does
    against PowerDNS and BIND. It reads moto through its API on every query (no cache).
    """

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.port = free_port()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text()
        rtype = dns.rdatatype.to_text(question.rdtype)
        try:
            rrset = self.moto.lookup(name, rtype)
        except Exception:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        if rrset is not None:
            response.answer.append(
                dns.rrset.from_text_list(
                    name,
                    rrset.get("TTL", 300),
                    "IN",
                    rtype,
                    [r["Value"] for r in rrset.get("ResourceRecords", [])],
                )
            )
        return response.to_wire()

    def start(self) -> Route53Nameserver:
        bridge = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(bridge.answer(data), self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                size = int.from_bytes(head, "big")
                data = b""
                while len(data) < size:
                    chunk = self.request.recv(size - len(data))
                    if not chunk:
                        return
                    data += chunk
                out = bridge.answer(data)
                self.request.sendall(len(out).to_bytes(2, "big") + out)

        class UdpServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
            daemon_threads = True
            allow_reuse_address = True

        class TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        for cls, handler in ((UdpServer, Udp), (TcpServer, Tcp)):
            server = cls(("127.0.0.1", self.port), handler)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


class ThrottlingProxy(BackgroundServer):
    """An HTTP proxy in front of moto that answers the first `throttle` requests with
    Route 53's Throttling error (HTTP 400), then forwards everything: a real throttling
    path through boto3, which moto alone never takes."""

    BODY = (
        b'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/'
        b'2013-04-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate '
        b"exceeded</Message></Error><RequestId>test</RequestId></ErrorResponse>"
    )

    def __init__(self, target: str, throttle: int) -> None:
        self.target = target.rstrip("/")
        self.throttle = throttle
        self.seen = 0
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handler(self) -> Any:
        import http.server

        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen += 1
                if proxy.seen <= proxy.throttle:
                    self.send_response(400)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(proxy.BODY)))
                    self.end_headers()
                    self.wfile.write(proxy.BODY)
                    return
                host, _, port = proxy.target.removeprefix("http://").partition(":")
                relay(self, host, int(port), body)

            do_GET = do_POST = do_DELETE = do_PUT = _any

        return Handler


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


__all__ = [
    "DEFAULT_RECORDS",
    "ZONE",
    "BindServer",
    "MotoServer",
    "PowerDnsServer",
    "Route53Nameserver",
    "ThrottlingProxy",
    "aws_env",
    "port_closed",
    "query",
]
