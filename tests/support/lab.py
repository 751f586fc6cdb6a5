"""The lab: a real, local stand-in for the whole failover story. Needs root.

    with Lab() as lab:                       # primary, standby, canary, PowerDNS, SeaweedFS
        config = lab.write_config()          # a complete failover.yaml for the scenario
        proc = popen_failover("agent", config=config, env=lab.env())
        lab.primary.blackhole()              # the primary's provider falls over
        ...
        lab.primary.heal()

Pieces:

- `LabHost`: a VPS stand-in. A network namespace (`tests.support.netns.NetnsHost`: its own
  address, real outages) plus a private mount namespace in which `/srv` is a bind mount of
  the host's own directory (`<lab>/hosts/<name>/srv`), so that primary and standby both keep
  the site under `/srv/site` while holding different data, as real servers do. A long-lived
  *anchor* process (`sleep infinity`) holds the mount namespace; every process of the host
  is started with `nsenter --target ANCHOR --mount --net`, which execs the program itself
  (the recorded PID is the server's own). In each host run:
    - sshd on `<ip>:22` (root, key login with the lab's key; its children, and so every
      command run over SSH, live in the host's namespaces);
    - the test web server (tests/support/webserver.py) serving the host's `/srv/site` over
      HTTPS on `<ip>:443` with a certificate for the site's name from the lab's TestCA;
    - a TCP->Unix forwarder (tests/support/forward.py) on `127.0.0.1:<s3 port>` inside the
      host, to SeaweedFS's S3 Unix socket: the repository URL `s3:http://127.0.0.1:<port>/
      <bucket>` works the same from the root namespace and from inside every host.
  Also inside each host, `<lab>/this-host` is the host's own `<lab>/hosts/<name>/run`
  (where the web server's PID file is), so one command line (a fence command, say) can
  stop "this host's" web server on whichever host it runs.
- `Lab`: the whole scenario (context manager): `primary` and `standby` LabHosts, a `canary`
  namespace the agent probes (`cut_canary()` / `heal_canary()` take the agent's own network
  "down"), PowerDNS with zone example.test (shop.example.test A = primary), SeaweedFS S3
  (tests/support/storage_servers.py's) with a bucket and an initialized restic repository,
  a NotificationReceiver, a TestCA trusted through SSL_CERT_FILE (`env()`), and
  `write_config(**overrides)`.

By hand (or for the README's demonstration): `python3 -m tests.support.lab` starts one,
writes its config and prints the environment to run `failover` against it.

Everything listens on loopback or on the lab's namespace addresses only. Teardown stops
every process by its PID and removes the namespaces, routes, sockets and the lab directory;
`cleanup_lab_leftovers()` does the same for what a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support import (
    TEST_AWS_ENV,
    require,
    require_binary,
    require_root,
    stop_process,
    wait_for,
    wait_for_port,
)
from tests.support.netns import NetnsHost, cleanup_leftovers
from tests.support.storage_servers import SeaweedFS
from tests.support.webserver import REPO_ROOT, Issued, TestCA, WebServer

SITE = "shop"
ZONE = "example.test"
HOSTNAME = f"shop.{ZONE}"
BUCKET = "failover-lab"
LAB_TMP = Path(tempfile.gettempdir())
LAB_PREFIX = "fot-lab-"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _kill_pid(pid: int, start: str | None, grace: float = 5.0) -> None:
    """SIGTERM then SIGKILL one process, only if it is still the one recorded."""
    if start is None or _start_time(pid) != start:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _start_time(pid) == start:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        time.sleep(0.05)
    if _start_time(pid) == start:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class _PidBook:
    """Root-namespace processes a lab started (`<lab>/pids.json`), so that a crashed run's
    servers can be stopped by their PID later."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "pids.json"
        (directory / "owner.json").write_text(
            json.dumps({"pid": os.getpid(), "start": _start_time(os.getpid())})
        )

    def add(self, what: str, pid: int) -> None:
        book = self._read()
        book[f"{what}:{pid}"] = {"pid": pid, "start": _start_time(pid)}
        self.path.write_text(json.dumps(book))

    def _read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return {}

    def kill_all(self) -> None:
        for entry in self._read().values():
            _kill_pid(int(entry["pid"]), entry.get("start"))


def cleanup_lab_leftovers() -> list[str]:
    """Stop the processes and remove the directories of labs whose owner process is gone,
    then the `fot-` namespaces (netns.cleanup_leftovers). Returns what was removed."""
    removed: list[str] = []
    for directory in LAB_TMP.glob(f"{LAB_PREFIX}*"):
        try:
            owner = json.loads((directory / "owner.json").read_text())
        except (OSError, ValueError):
            continue
        if _start_time(int(owner["pid"])) == owner.get("start"):
            continue  # a live lab (another test process)
        book = _PidBook.__new__(_PidBook)  # reading an existing book: no new owner
        book.path = directory / "pids.json"
        book.kill_all()
        for sock in _seaweed_sockets(directory):
            with contextlib.suppress(OSError):
                sock.unlink()
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(str(directory))
    removed += cleanup_leftovers()
    return removed


# --- SeaweedFS ------------------------------------------------------------------------------


def _seaweed_sockets(directory: Path) -> list[Path]:
    """The gRPC sockets `weed` leaves in /tmp, for the ports recorded in `directory`."""
    try:
        ports = json.loads((directory / "seaweed-ports.json").read_text())
    except (OSError, ValueError):
        return []
    out: list[Path] = []
    for port in ports:
        out += list(Path("/tmp").glob(f"seaweedfs-*-{port}.sock"))
        out += list(Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"))
    return out


class SeaweedS3(SeaweedFS):
    """tests/support/storage_servers.py's SeaweedFS (`weed mini`, every port moved,
    telemetry off), plus what the lab needs: S3 on the Unix socket `s3_socket` waited for,
    the ports recorded for a crashed run's cleanup, a quick stop, and `create_bucket`."""

    def __init__(self, directory: Path, access_key: str, secret_key: str) -> None:
        super().__init__(directory, access_key, secret_key)
        ports = [self.master_port, self.volume_port, self.filer_port, self.s3_port, self.admin_port]
        (self.dir / "seaweed-ports.json").write_text(
            json.dumps([p + d for p in ports for d in (0, 10000)])
        )

    @property
    def s3_socket(self) -> Path:
        return self.dir / "s3.sock"  # -s3.localSocket of SeaweedFS.start()

    def start(self) -> SeaweedS3:
        super().start()
        wait_for(self.s3_socket.exists, 10, "SeaweedFS's S3 Unix socket")
        return self

    def create_bucket(self, name: str) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=BotoConfig(retries={"max_attempts": 2}, connect_timeout=3, read_timeout=10),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                client.create_bucket(Bucket=name)
                return
            except client.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        super().stop()
        for sock in [*_seaweed_sockets(self.dir), self.s3_socket, self.dir / "filer.sock"]:
            with contextlib.suppress(OSError):
                sock.unlink()


# --- hosts ----------------------------------------------------------------------------------


class LabHost:
    """A VPS stand-in: a NetnsHost plus a private mount namespace with its own /srv."""

    def __init__(self, name: str, lab_dir: Path, *, short: str | None = None) -> None:
        self.name = name
        self.lab_dir = lab_dir
        self.dir = lab_dir / "hosts" / name
        self.srv = self.dir / "srv"  # this host's /srv, as the root namespace sees it
        self.run_dir = self.dir / "run"  # this host's <lab>/this-host
        self.site_dir = self.srv / "site"
        self.net = NetnsHost(short)
        self.anchor: subprocess.Popen[bytes] | None = None
        self.sshd: subprocess.Popen[bytes] | None = None
        self.web: WebServer | None = None
        self.forwarder: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[Any]] = []
        self._ssh: tuple[Path, Path] | None = None  # (private key, known_hosts)

    @property
    def ip(self) -> str:
        return self.net.ip

    # -- life cycle --

    def create(self) -> LabHost:
        require_root()
        unshare = require_binary("unshare")
        require_binary("nsenter")
        self.srv.mkdir(parents=True, exist_ok=True)
        self.site_dir.mkdir(exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not Path("/srv").is_dir():
            require(
                False,
                "/srv does not exist here: the lab bind-mounts each host's own "
                "/srv over it (in a private mount namespace) and needs the directory",
            )
        this_host = self.lab_dir / "this-host"
        this_host.mkdir(exist_ok=True)
        self.net.create()
        try:
            script = (
                f"mount --bind {_q(self.srv)} /srv && "
                f"mount --bind {_q(self.run_dir)} {_q(this_host)} && "
                "echo ready && exec sleep infinity"
            )
            # ip netns exec -> unshare -> sh -> sleep, each exec'ing the next: the PID is
            # the anchor's own.
            self.anchor = self.net.popen(
                [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            assert self.anchor.stdout is not None
            line = self.anchor.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(
                    f"{self.name}: the mount namespace anchor failed (exit {self.anchor.wait(5)})"
                )
            self.anchor.stdout.close()
        except BaseException:
            self.net.destroy()
            raise
        return self

    def destroy(self) -> None:
        self.stop_web()
        for proc in reversed(self.procs):
            stop_process(proc, grace=3)
        self.net.destroy()  # kills whatever else lives in the namespace (the anchor too)

    def __enter__(self) -> LabHost:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- running things inside --

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """argv run inside this host's network and mount namespaces (nsenter execs it)."""
        assert self.anchor is not None, "create() the host first"
        return ["nsenter", f"--target={self.anchor.pid}", "--mount", "--net", "--", *argv]

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(self.exec_argv(argv), **kw)
        self.procs.append(proc)
        return proc

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.exec_argv(argv), capture_output=True, text=True, input=input, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{self.name}: {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    # -- sshd --

    def start_sshd(self, authorized_keys: Path, key: Path, known_hosts: Path) -> None:
        sshd = require_binary("sshd")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # compiled-in privsep dir
        host_key = self.dir / "ssh_host_ed25519_key"
        if not host_key.exists():
            _keygen(host_key, f"{self.name}-host")
        conf = self.dir / "sshd_config"
        conf.write_text(
            "\n".join(
                [
                    "Port 22",
                    f"ListenAddress {self.ip}",
                    f"HostKey {host_key}",
                    f"PidFile {self.run_dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PrintMotd no",
                    "UseDNS no",
                    "Subsystem sftp /usr/lib/openssh/sftp-server",
                    "",
                ]
            )
        )
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - kept by the child
        try:
            self.sshd = self.popen(
                [sshd, "-D", "-e", "-f", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        wait_for_port(self.ip, 22, 10)
        pub = Path(str(host_key) + ".pub").read_text().split()
        with open(known_hosts, "a") as fh:
            fh.write(f"{self.ip} {pub[0]} {pub[1]}\n")
        self._ssh = (key, known_hosts)

    def ssh_argv(self, command: str) -> list[str]:
        assert self._ssh is not None, "sshd is not started"
        key, known_hosts = self._ssh
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-T",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "-p",
            "22",
            f"root@{self.ip}",
            command,
        ]

    def ssh(
        self, command: str, *, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the host over SSH (as the tool does)."""
        proc = subprocess.run(
            self.ssh_argv(command), capture_output=True, text=True, input=input, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"ssh {self.name}: {command!r} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    # -- the web server --

    def start_web(self, cert: Issued | None = None, port: int = 443) -> WebServer:
        """The test web server serving this host's /srv/site on <ip>:port (HTTPS when a
        certificate is given: the first start's certificate is kept for restarts)."""
        if self.web is not None and self.web.proc is not None and self.web.proc.poll() is None:
            return self.web
        if cert is None and self.web is not None:
            cert_path, key_path = self.web.cert, self.web.key
        else:
            cert_path, key_path = (cert.cert, cert.key) if cert else (None, None)
        web = WebServer(
            Path("/srv/site"),
            bind=self.ip,
            port=port,
            cert=cert_path,
            key=key_path,
            netns=self,
            test_routes=False,
        )  # type: ignore[arg-type]
        web.start()
        assert web.proc is not None
        (self.run_dir / "web.pid").write_text(f"{web.proc.pid}\n")
        self.web = web
        return web

    def stop_web(self) -> None:
        if self.web is not None:
            self.web.stop()
            with contextlib.suppress(OSError):
                (self.run_dir / "web.pid").unlink()

    @property
    def web_running(self) -> bool:
        return self.web is not None and self.web.proc is not None and self.web.proc.poll() is None

    # -- the way to storage --

    def start_forwarder(self, port: int, unix_socket: Path) -> None:
        """127.0.0.1:port inside this host -> unix_socket (SeaweedFS's S3 in the root ns)."""
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.forwarder = self.popen(
            [
                sys.executable,
                "-m",
                "tests.support.forward",
                "--listen",
                f"127.0.0.1:{port}",
                "--unix",
                str(unix_socket),
            ],
            cwd=str(REPO_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
        )

        def listening() -> bool:
            probe = (
                f"import socket; socket.create_connection(('127.0.0.1', {port}), "
                "timeout=0.5).close()"
            )
            return self.run([sys.executable, "-c", probe], check=False).returncode == 0

        wait_for(listening, 10, f"the S3 forwarder in {self.name}", interval=0.1)

    # -- outages (the NetnsHost's) --

    def blackhole(self) -> None:
        """Every packet coming in is dropped (clients time out)."""
        self.net.blackhole()

    def reset(self, port: int) -> None:
        """TCP connections to `port` are answered with a reset (fast failure)."""
        self.net.reset(port)

    def link_down(self) -> None:
        self.net.link_down()

    def heal(self) -> None:
        self.net.heal()

    def __repr__(self) -> str:
        return f"LabHost({self.name}, ip={getattr(self.net, 'ip', None)})"


def _q(path: Path | str) -> str:
    import shlex

    return shlex.quote(str(path))


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    path.chmod(0o600)


# --- the lab --------------------------------------------------------------------------------


PRIMARY_INDEX = "<html><head><title>Shop</title></head><body>{marker}</body></html>\n"


class Lab:
    """The whole failover scenario on one machine (see the module's docstring).

    `dns=False` leaves PowerDNS out, `storage=False` SeaweedFS (and the forwarders), for
    tests that need only the watch. `standby_content`: "outdated" (an old copy of the site)
    or "empty"."""

    def __init__(
        self,
        *,
        dns: bool = True,
        storage: bool = True,
        ssh: bool = True,
        standby_content: str = "outdated",
        init_repository: bool = True,
    ) -> None:
        self.want_dns = dns
        self.want_storage = storage
        self.want_ssh = ssh
        self.standby_content = standby_content
        self.init_repository = init_repository and storage
        self.id = uuid.uuid4().hex[:6]
        self.dir = Path(tempfile.mkdtemp(prefix=f"{LAB_PREFIX}{self.id}-", dir=LAB_TMP))
        self.dir.chmod(0o755)  # sshd, web servers and ssh clients read keys/certs here
        self._book = _PidBook(self.dir)
        self.secrets_dir = self.dir / "secrets"
        self.secrets_dir.mkdir(mode=0o700)
        self.primary = LabHost("primary", self.dir, short=f"{self.id}p")
        self.standby = LabHost("standby", self.dir, short=f"{self.id}s")
        self.canary = NetnsHost(f"{self.id}c")
        self.canary_port = 80
        self.canary_web: WebServer | None = None
        self.ca: TestCA | None = None
        self.cert: Issued | None = None
        self.pdns: Any = None
        self.s3: SeaweedS3 | None = None
        self.receiver: Any = None
        self.marker = f"primary-data-{secrets.token_hex(6)}"
        self.outdated_marker = f"outdated-copy-{secrets.token_hex(6)}"
        self.key = self.dir / "ssh" / "id_ed25519"
        self.known_hosts = self.dir / "ssh" / "known_hosts"
        self.authorized_keys = self.dir / "ssh" / "authorized_keys"
        self.restic_password_file = self.secrets_dir / "restic-password"
        self.s3_access_key = f"lab-{self.id}"
        self.s3_secret_file = self.secrets_dir / "s3-secret-key"
        self.bucket = BUCKET
        self._stack = contextlib.ExitStack()

    # -- life cycle --

    def start(self) -> Lab:
        require_root()
        for binary in ("unshare", "nsenter", "nft", "ip"):
            require_binary(binary)
        if self.want_ssh:
            require_binary("sshd")
            require_binary("ssh")
        if self.want_storage:
            require_binary("restic")
        cleanup_lab_leftovers()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from tests.support.receiver import NotificationReceiver

        self.ca = TestCA(self.dir / "ca")
        self.cert = self.ca.issue(HOSTNAME, stem="site")
        (self.dir / "empty-certs").mkdir()
        self.receiver = self._stack.enter_context(NotificationReceiver())

        # storage first: the hosts' forwarders connect to its socket
        if self.want_storage:
            self.s3_secret_file.write_text(secrets.token_hex(16) + "\n")
            self.s3_secret_file.chmod(0o600)
            self.restic_password_file.write_text(secrets.token_hex(16) + "\n")
            self.restic_password_file.chmod(0o600)
            self.s3 = SeaweedS3(
                self.dir / "seaweed", self.s3_access_key, self.s3_secret_file.read_text().strip()
            )
            self.s3.start()
            assert self.s3.proc is not None
            self._book.add("weed", self.s3.proc.pid)
            self.s3.create_bucket(self.bucket)

        if self.want_ssh:
            self.key.parent.mkdir()
            _keygen(self.key, "failover-lab")
            self.authorized_keys.write_text(Path(str(self.key) + ".pub").read_text())
            self.known_hosts.write_text("")

        for host in (self.primary, self.standby):
            host.create()
            if self.want_ssh:
                host.start_sshd(self.authorized_keys, self.key, self.known_hosts)
            if self.s3 is not None:
                host.start_forwarder(self.s3.s3_port, self.s3.s3_socket)
        self._write_site()
        for host in (self.primary, self.standby):
            host.start_web(self.cert)

        self.canary.create()
        canary_root = self.dir / "canary-www"
        canary_root.mkdir()
        (canary_root / "index.html").write_text("canary\n")
        self.canary_web = WebServer(
            canary_root, port=self.canary_port, netns=self.canary, test_routes=False
        ).start()

        if self.want_dns:
            from tests.support.dns_servers import PowerDnsServer

            self.pdns = PowerDnsServer(
                zone=ZONE, records={(HOSTNAME, "A"): ([self.primary.ip], 60)}
            )
            self.pdns._spawn = self._booked(self.pdns._spawn, "pdns", self.pdns)
            self._stack.callback(self.pdns.cleanup)
            self.pdns.start()

        if self.init_repository:
            self.restic("init")

    def _booked(self, spawn: Any, what: str, server: Any) -> Any:
        def wrapped(*args: Any, **kw: Any) -> None:
            spawn(*args, **kw)
            if server.proc is not None:
                self._book.add(what, server.proc.pid)

        return wrapped

    def _write_site(self) -> None:
        site = self.primary.site_dir
        (site / "index.html").write_text(PRIMARY_INDEX.format(marker=self.marker))
        (site / "healthz").write_text("ok\n")
        (site / "data").mkdir(exist_ok=True)
        (site / "data" / "orders.csv").write_text("id,total\n1,10.00\n2,24.50\n")
        if self.standby_content == "outdated":
            (self.standby.site_dir / "index.html").write_text(
                PRIMARY_INDEX.format(marker=self.outdated_marker)
            )
            (self.standby.site_dir / "healthz").write_text("ok\n")
        elif self.standby_content != "empty":
            raise ValueError("standby_content is 'outdated' or 'empty'")

    def stop(self) -> None:
        """Tear everything down; safe to call more than once and after a failed start."""
        errors: list[BaseException] = []
        for action in (
            lambda: self.canary_web.stop() if self.canary_web else None,
            self.canary.destroy,
            self.primary.destroy,
            self.standby.destroy,
            self._stack.close,
            lambda: self.s3.stop() if self.s3 else None,
            self._book.kill_all,
        ):
            try:
                action()
            except BaseException as exc:  # keep tearing down; report the first afterwards
                errors.append(exc)
        with contextlib.suppress(OSError):
            for sock in _seaweed_sockets(self.dir / "seaweed"):
                sock.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the agent's side --

    @property
    def hosts(self) -> dict[str, LabHost]:
        return {"primary": self.primary, "standby": self.standby}

    @property
    def repository(self) -> str:
        assert self.s3 is not None, "the lab has no storage"
        return f"s3:http://127.0.0.1:{self.s3.s3_port}/{self.bucket}"

    def s3_env(self) -> dict[str, str]:
        """restic's environment for the lab repository (secrets: keep off command lines)."""
        assert self.s3 is not None
        return {
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "RESTIC_REPOSITORY": self.repository,
            "RESTIC_PASSWORD": self.restic_password_file.read_text().strip(),
        }

    def restic(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """restic against the lab repository, from the root namespace (the agent's side)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
        env.update(self.s3_env())
        env["RESTIC_CACHE_DIR"] = str(self.dir / "restic-cache")
        proc = subprocess.run(
            [require_binary("restic"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"restic {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def env(self) -> dict[str, str]:
        """The environment the agent (a failover subprocess) needs in this lab."""
        assert self.ca is not None and self.receiver is not None
        env = dict(TEST_AWS_ENV)
        env.update(
            {
                "SSL_CERT_FILE": str(self.ca.cert_path),
                "SSL_CERT_DIR": str(self.dir / "empty-certs"),
                "AWS_EC2_METADATA_DISABLED": "true",
                "FOT_LAB_NOTIFY_URL": self.receiver.url,
            }
        )
        if self.pdns is not None:
            env["PDNS_API_KEY"] = self.pdns.api_key
        if self.s3 is not None:
            env["FOT_LAB_S3_ACCESS_KEY"] = self.s3_access_key
        return env

    def cut_canary(self) -> None:
        """The canary stops answering (its packets are dropped): with the primary cut as
        well, this is the agent's own network going down."""
        self.canary.blackhole()

    def heal_canary(self) -> None:
        self.canary.heal()

    @property
    def fence_commands(self) -> list[str]:
        """Stops the web server of the host it runs on (its PID file in <lab>/this-host)."""
        pid = self.dir / "this-host" / "web.pid"
        return [f'if [ -s {pid} ]; then kill "$(cat {pid})"; rm -f {pid}; fi']

    @property
    def after_restore_commands(self) -> list[str]:
        """Checks the restored site on the target host (its index and data are there)."""
        return ["test -s /srv/site/index.html", "test -s /srv/site/data/orders.csv"]

    def config_dict(self, **overrides: Any) -> dict[str, Any]:
        """The config as a dict. Overrides: a key of the config's top level (state,
        canaries, notify, dns_providers, ...) or of the site (hostname, endpoints, checks,
        policy, failover, dns, backup, active) is merged into it: dicts deeply, other
        values replace; None removes the key."""
        assert self.canary.ip
        site: dict[str, Any] = {
            "hostname": HOSTNAME,
            "endpoints": {name: self._endpoint(host) for name, host in self.hosts.items()},
            "active": "primary",
            "checks": [
                {"type": "https", "path": "/healthz", "expect_body": "ok", "timeout": "0.8s"},
                {"type": "tcp", "port": 22, "timeout": "0.8s"},
            ],
            "policy": {
                "interval": "1s",
                "down_after": "3s",
                "up_after": "2s",
                "cooldown": 0,
                "auto_failover": True,
                "auto_failback": False,
            },
        }
        if not self.want_ssh:
            site["checks"] = site["checks"][:1]
        config: dict[str, Any] = {
            "state": str(self.dir / "state.db"),
            "canaries": [
                {"type": "tcp", "host": self.canary.ip, "port": self.canary_port, "timeout": "0.5s"}
            ],
            "notify": [{"url": "${FOT_LAB_NOTIFY_URL}"}],
        }
        if self.want_storage and self.want_ssh:
            site["failover"] = {
                "standby": "cold",
                "restore_target": "/",
                "after_restore": self.after_restore_commands,
                "fence": self.fence_commands,
                "recheck_timeout": "20s",
                "command_timeout": "30s",
            }
            site["backup"] = {
                "repository": self.repository,
                "password": f"file:{self.restic_password_file}",
                "env": {
                    "AWS_ACCESS_KEY_ID": "${FOT_LAB_S3_ACCESS_KEY}",
                    "AWS_SECRET_ACCESS_KEY": f"file:{self.s3_secret_file}",
                },
                "source": "primary",
                "paths": ["/srv/site"],
                "max_age": "1h",
                "verify_every": None,
                "timeout": "2m",
            }
        if self.pdns is not None:
            config["dns_providers"] = {"pdns": self.pdns.provider_config("${PDNS_API_KEY}")}
            site["dns"] = {
                "provider": "pdns",
                "zone": ZONE,
                "records": [{"name": HOSTNAME, "type": "A", "ttl": 60}],
                "nameservers": [self.pdns.nameserver],
                "verify_deadline": "10s",
            }
        site_keys = {
            "hostname",
            "endpoints",
            "active",
            "checks",
            "policy",
            "failover",
            "dns",
            "backup",
        }
        for key, value in overrides.items():
            target = site if key in site_keys else config
            _merge(target, key, value)
        config["sites"] = {SITE: site}
        return config

    def _endpoint(self, host: LabHost) -> dict[str, Any]:
        endpoint: dict[str, Any] = {"address": host.ip, "description": f"lab {host.name}"}
        if self.want_ssh:
            endpoint["ssh"] = {
                "user": "root",
                "key": str(self.key),
                "known_hosts": str(self.known_hosts),
                "port": 22,
                "options": ["ConnectTimeout=3"],
            }
        return endpoint

    def write_config(self, path: Path | None = None, **overrides: Any) -> Path:
        """Write the scenario's failover.yaml (see config_dict) and return its path."""
        import yaml

        path = path or self.dir / "failover.yaml"
        path.write_text(
            "# written by tests/support/lab.py\n"
            + yaml.safe_dump(self.config_dict(**overrides), sort_keys=False)
        )
        path.chmod(0o600)
        return path

    # -- looking at things from outside --

    def https_get(
        self, host: LabHost | str, path: str = "/", timeout: float = 3.0
    ) -> tuple[int, str]:
        """GET https://<host ip><path> with SNI and Host = the site's name, verified
        against the lab CA: (status, body)."""
        assert self.ca is not None
        ip = host.ip if isinstance(host, LabHost) else host
        ctx = ssl.create_default_context(cafile=str(self.ca.cert_path))
        with (
            socket.create_connection((ip, 443), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=HOSTNAME) as tls,
        ):
            tls.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode(errors="replace")

    def dns_answer(self, name: str = HOSTNAME, rtype: str = "A") -> list[str]:
        """What the lab's PowerDNS serves for name/type."""
        from tests.support.dns_servers import query

        assert self.pdns is not None, "the lab has no DNS"
        return query(self.pdns.dns_port, name, rtype)[0]


def _merge(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    elif isinstance(value, dict) and isinstance(target.get(key), dict):
        for k, v in value.items():
            _merge(target[key], k, v)
    else:
        target[key] = value


def running_lab(**kw: Any) -> Iterator[Lab]:
    """The body of every test module's `lab` fixture: what the lab needs is there (fails
    under CI=true, skips elsewhere), then a lab runs until the fixture ends."""
    from tests.support import require_binary, require_root

    require_root()
    needed = ["unshare", "nsenter", "nft", "sshd", "ssh"]
    if kw.get("storage", True):
        needed.append("restic")
    if kw.get("dns", True):
        needed.append("pdns_server")
    for binary in needed:
        require_binary(binary)
    with Lab(**kw) as running:
        yield running


def main(argv: list[str] | None = None) -> int:
    """`python3 -m tests.support.lab`: start a lab, write its config, print how to point
    the tool at it, and keep it running until Ctrl-C / SIGTERM (for the README's
    demonstration and for poking at it by hand). Needs root."""
    import argparse
    import shlex

    parser = argparse.ArgumentParser(prog="python3 -m tests.support.lab")
    parser.add_argument("--no-dns", action="store_true", help="leave PowerDNS out")
    parser.add_argument("--no-storage", action="store_true", help="leave SeaweedFS out")
    parser.add_argument(
        "--standby",
        choices=["outdated", "empty"],
        default="outdated",
        help="what the standby's /srv/site holds at first",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the lab needs root (network and mount namespaces)", file=sys.stderr)
        return 2
    stop = False

    def on_signal(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Lab(
        dns=not args.no_dns, storage=not args.no_storage, standby_content=args.standby
    ) as running:
        config = running.write_config()
        print(f"lab directory: {running.dir}")
        for name, host in running.hosts.items():
            print(f"{name}: {host.ip} (ssh root@{host.ip}, https://{HOSTNAME}/ at {host.ip})")
        print(f"canary: {running.canary.ip}:{running.canary_port}")
        if running.pdns is not None:
            print(f"PowerDNS: {running.pdns.nameserver} (API port {running.pdns.api_port})")
        if running.s3 is not None:
            print(f"restic repository: {running.repository}")
        print(f"notifications: {running.receiver.url}")
        print("\nin another shell:")
        for key, value in running.env().items():
            print(f"export {key}={shlex.quote(value)}")
        print(f"failover --config {config} agent")
        print(
            f"ssh -i {running.key} -o UserKnownHostsFile={running.known_hosts} "
            f"root@{running.primary.ip}"
        )
        print("\nCtrl-C stops the lab and removes everything.", flush=True)
        while not stop:
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "BUCKET",
    "HOSTNAME",
    "SITE",
    "ZONE",
    "Lab",
    "LabHost",
    "SeaweedS3",
    "cleanup_lab_leftovers",
    "running_lab",
]
