"""A small threaded HTTP/HTTPS server for tests, and a test CA that signs its certificates.

Run it as a program (so that it can run inside a network namespace, or serve a restored
site's data directory):

    python3 -m tests.support.webserver --bind IP --port N --root DIR [--tls-cert F --tls-key F]

It serves files from DIR (GET and HEAD), `/healthz` answers 200 "ok". With `--test-routes`
it also answers `/_fot/status/NNN` (that status), `/_fot/delay/SECONDS` (200 after a pause)
and `/_fot/chunked` (a chunked body), for probe tests.

From a test: `with WebServer(root, ...) as web:` (or `.start()` / `.stop()`), optionally
inside a NetnsHost (`netns=host`). Certificates: `TestCA(dir).issue("shop.test", days=30)`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.netns import NetnsHost

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- the server ---------------------------------------------------------------------------


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fot-webserver/0.1"
    sys_version = ""
    test_routes = False
    timeout = 30  # seconds a connection may stay idle (also bounds the TLS handshake)

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("FOT_WEBSERVER_LOG"):
            super().log_message(format, *args)

    def _plain(self, status: int, body: bytes, head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _special(self, head_only: bool) -> bool:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._plain(200, b"ok", head_only)
            return True
        if not self.test_routes or not path.startswith("/_fot/"):
            return False
        parts = path.split("/")[2:]
        if parts[:1] == ["status"] and len(parts) == 2 and parts[1].isdigit():
            status = int(parts[1])
            self._plain(status, f"status {status}\n".encode(), head_only)
        elif parts[:1] == ["delay"] and len(parts) == 2:
            time.sleep(float(parts[1]))
            self._plain(200, b"ok after a delay\n", head_only)
        elif parts == ["chunked"]:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not head_only:
                for piece in (b"hello ", b"chunked ", b"world\n"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
        else:
            self._plain(404, b"no such test route\n", head_only)
        return True

    def do_GET(self) -> None:
        if not self._special(False):
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._special(True):
            super().do_HEAD()

    def list_directory(self, path: Any) -> Any:  # no directory listings
        self.send_error(404, "File not found")
        return None


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: Any, tls: ssl.SSLContext | None):
        self.tls = tls
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if self.tls is not None:
            # The handshake happens in the handler's thread: a client that never speaks
            # TLS must not block the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        if os.environ.get("FOT_WEBSERVER_LOG"):
            super().handle_error(request, client_address)


def make_server(
    bind: str,
    port: int,
    root: Path,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    test_routes: bool = False,
) -> Server:
    ctx = None
    if tls_cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)

    class BoundHandler(Handler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

    BoundHandler.test_routes = test_routes
    return Server((bind, port), BoundHandler, ctx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.support.webserver")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--test-routes", action="store_true")
    args = parser.parse_args(argv)
    server = make_server(
        args.bind, args.port, args.root, args.tls_cert, args.tls_key, args.test_routes
    )
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


# --- from tests -----------------------------------------------------------------------------


class WebServer:
    """The server as a subprocess (in a namespace when `netns` is given). Context manager."""

    def __init__(
        self,
        root: Path,
        *,
        bind: str | None = None,
        port: int | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        netns: NetnsHost | None = None,
        test_routes: bool = True,
    ) -> None:
        from tests.support import free_port

        self.root = Path(root)
        self.netns = netns
        self.bind = bind or (netns.ip if netns is not None else "127.0.0.1")
        # A port free on loopback is free in a fresh namespace too.
        self.port = port or free_port()
        self.cert = cert
        self.key = key
        self.test_routes = test_routes
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bind}:{self.port}"

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "tests.support.webserver",
            "--bind",
            self.bind,
            "--port",
            str(self.port),
            "--root",
            str(self.root),
        ]
        if self.cert:
            argv += ["--tls-cert", str(self.cert), "--tls-key", str(self.key or self.cert)]
        if self.test_routes:
            argv.append("--test-routes")
        return argv

    def start(self, timeout: float = 10.0) -> WebServer:
        from tests.support import wait_for_port

        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        kw: dict[str, Any] = {"cwd": str(REPO_ROOT), "env": env, "stdin": subprocess.DEVNULL}
        if self.netns is not None:
            self.proc = self.netns.popen(self.argv(), **kw)
        else:
            self.proc = subprocess.Popen(self.argv(), **kw)
        try:
            wait_for_port(self.bind, self.port, timeout)
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"webserver exited with {self.proc.returncode}")
        return self

    def stop(self) -> None:
        from tests.support import stop_process

        if self.proc is not None:
            stop_process(self.proc, grace=3.0)

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: Path  # PEM certificate (leaf)
    key: Path  # PEM private key
    not_after: dt.datetime


class TestCA:
    """A throwaway CA in `directory`: `ca.pem` is what clients trust (SSL_CERT_FILE)."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "failover test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._name = subject
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = self.directory / "ca.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        *names: str,
        days: float = 90,
        not_before_days: float = -1,
        stem: str | None = None,
    ) -> Issued:
        """A server certificate for `names` (DNS names or IPs) valid from `not_before_days`
        (relative to now, negative = in the past) for `days` from now (negative: expired)."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        if not names:
            raise ValueError("a certificate needs at least one name")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        not_after = now + dt.timedelta(days=days)
        not_before = now + dt.timedelta(days=not_before_days)
        if not_before >= not_after:
            not_before = not_after - dt.timedelta(days=1)
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        stem = stem or f"{names[0].replace(':', '_')}-{abs(hash((names, days))) % 10**8}"
        cert_path = self.directory / f"{stem}.crt"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return Issued(cert_path, key_path, cert.not_valid_after_utc)


if __name__ == "__main__":
    sys.exit(main())
