"""Real servers for backup tests, as context managers, on loopback only:

- `SeaweedFS`: `weed mini` S3 (every port moved, telemetry off), restartable on the same ports;
- `Sshd`: OpenSSH's sshd on a loopback port with a test client key and a known_hosts file;
- `Postgres`: a PostgreSQL 15 cluster (initdb + postgres, run as the `postgres` user) on a
  free port, unix socket in its own directory, password authentication over TCP.

Stop is SIGTERM then SIGKILL by PID; nothing is left behind but the given directory.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import TEST_AWS_ENV, free_port, require_binary, stop_process, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)  # the real binary, not a pyenv shim: its PID is weed's own
    return require_binary("weed")


class SeaweedFS:
    def __init__(
        self,
        directory: Path,
        access_key: str = TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
        secret_key: str = TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        anonymous_read: bool = False,
    ) -> None:
        self.anonymous_read = anonymous_read  # objects readable over plain HTTP (a website)
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.access_key = access_key
        self.secret_key = secret_key
        ports: list[int] = []
        while len(ports) < 5:
            port = free_port(also_plus=10000)
            if port not in ports and all(abs(port - p) != 10000 for p in ports):
                ports.append(port)
        self.master_port, self.volume_port, self.filer_port, self.s3_port, self.admin_port = ports
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def repository(self, bucket: str) -> str:
        return f"s3:{self.endpoint}/{bucket}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> SeaweedFS:
        config = self.dir / "identities.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                    + ([{"name": "anonymous", "actions": ["Read"]}] if self.anonymous_read else [])
                }
            )
        )
        config.chmod(0o600)
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        argv = [
            _weed_binary(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            f"-s3.port={self.s3_port}",
            f"-admin.port={self.admin_port}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-master.telemetry.url=http://127.0.0.1:9/",
            f"-filer.localSocket={self.dir / 'filer.sock'}",
            f"-s3.localSocket={self.dir / 's3.sock'}",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
            )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed exited ({self.proc.returncode}):\n{tail}")
            for port in (self.master_port, self.filer_port, self.s3_port):
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            return True

        wait_for(ready, 30, "SeaweedFS (master, filer, S3)")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=3.0)
            self.proc = None
        for port in (
            self.master_port,
            self.volume_port,
            self.filer_port,
            self.s3_port,
            self.admin_port,
        ):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock"):
                sock.unlink(missing_ok=True)
            for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                sock.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Sshd:
    """sshd on 127.0.0.1:port; clients log in with `key` as any user (AuthorizedKeysFile is
    one absolute file), checking the host key against `known_hosts`."""

    def __init__(self, directory: Path, use_pam: bool = False) -> None:
        # use_pam: sshd without PAM refuses accounts whose password is locked ("!"), such as
        # the system users a test may log in as; with PAM only key authentication counts.
        self.use_pam = use_pam
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.port = free_port()
        self.key = self.dir / "client_key"
        self.known_hosts = self.dir / "known_hosts"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sshd:
        sshd = require_binary("sshd")
        keygen = require_binary("ssh-keygen")
        host_key = self.dir / "host_key"
        for path in (host_key, self.key):
            if not path.exists():
                subprocess.run(
                    [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
                )
        authorized = self.dir / "authorized_keys"
        shutil.copy(self.key.with_suffix(".pub"), authorized)
        authorized.chmod(0o644)
        # A non-root login user (the unreadable-file test) must read its key file.
        self.key.chmod(0o600)
        pub = (self.dir / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        self.known_hosts.chmod(0o644)
        conf = self.dir / "sshd_config"
        conf.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            f"KbdInteractiveAuthentication no\nUsePAM {'yes' if self.use_pam else 'no'}\n"
            "StrictModes no\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\nMaxStartups 100:30:200\n"
            "MaxSessions 50\nLogLevel ERROR\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "ab"),  # noqa: SIM115
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError((self.dir / "sshd.log").read_text()[-2000:])
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                return s.recv(4).startswith(b"SSH-")

        wait_for(ready, 10, "sshd")
        return self

    def client_key_for(self, user: str) -> Path:
        """A copy of the client key readable by `user` (ssh refuses keys others can read)."""
        if user == "root":
            return self.key
        copy = self.dir / f"client_key.{user}"
        shutil.copy(self.key, copy)
        pw = pwd.getpwnam(user)
        os.chown(copy, pw.pw_uid, pw.pw_gid)
        copy.chmod(0o600)
        return copy

    def ssh_target(self, user: str = "root") -> dict[str, Any]:
        """The config's `ssh:` mapping for an endpoint on this server."""
        return {
            "port": self.port,
            "user": user,
            "key": str(self.key),
            "known_hosts": str(self.known_hosts),
        }

    def ssh_command(self, user: str = "root") -> str:
        return (
            f"ssh -i {self.key} -o IdentitiesOnly=yes -o UserKnownHostsFile={self.known_hosts}"
            f" -o BatchMode=yes -p {self.port} -l {user}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Postgres:
    """A PostgreSQL cluster in `directory`, run as the `postgres` user (root cannot)."""

    def __init__(self, directory: Path, password: str = "pg-test-password") -> None:
        self.dir = Path(directory)
        self.port = free_port()
        self.password = password
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.pw = pwd.getpwnam("postgres")
        except KeyError:
            self.pw = None

    def start(self) -> Postgres:
        if not (PG_BIN / "postgres").exists() or self.pw is None:
            require_binary("postgres-15-is-missing")
        assert self.pw is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        for path in (self.dir, self.socket_dir):
            os.chown(path, self.pw.pw_uid, self.pw.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chown(pwfile, self.pw.pw_uid, self.pw.pw_gid)
        pwfile.chmod(0o600)
        if not self.data.exists():
            subprocess.run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                user=self.pw.pw_uid,
                group=self.pw.pw_gid,
                cwd=self.dir,
            )
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            user=self.pw.pw_uid,
            group=self.pw.pw_gid,
            start_new_session=True,
            cwd=self.dir,
        )
        log.close()
        wait_for(lambda: self.psql("SELECT 1").strip() == "1", 30, "PostgreSQL")
        return self

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password}

    def psql(self, sql: str, db: str = "postgres") -> str:
        proc = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        return proc.stdout

    def load(self, db: str, sql_text: str) -> None:
        proc = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
            ],
            input=sql_text,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=10)
            self.proc = None

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
