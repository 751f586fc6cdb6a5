"""Remote sources over a real sshd, an sftp repository, and an unreadable file (exit 3)."""

from __future__ import annotations

import os
import pwd
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from failover.backup.journal import load_state
from failover.backup.restore import restore_to_endpoint, restore_to_path
from failover.backup.run import list_snapshots, run_backup
from failover.backup.verify import verify_backup
from failover.errors import RemoteError
from providers.remote import Remote
from tests.integration.backup.conftest import PASSWORD, make_source
from tests.support import require


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


class ProcessWatch:
    """Samples every process's command line while a backup runs."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            self.stop.wait(0.02)

    def __enter__(self) -> ProcessWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_remote_source_over_ssh(tmp_path, restic_bin, sshd, config_factory, store_for):
    src = make_source(tmp_path)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t(a INTEGER, b TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(100)])
    marks = tmp_path / "marks"
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "source": "primary",
            "paths": [str(src)],
            "databases": [{"type": "sqlite", "path": str(db)}],
            "before": [f"echo before >> {marks}"],
            "after": [f"echo after >> {marks}"],
            "verify_sample": 3,
        },
        endpoints={
            "primary": {"address": "127.0.0.1", "ssh": sshd.ssh_target()},
            "standby": {"address": "127.0.0.1", "ssh": sshd.ssh_target()},
        },
    )
    store = store_for(loaded)
    with ProcessWatch() as watch:
        result = run_backup(loaded, store, "shop")
    assert result.ok
    assert marks.read_text() == "before\nafter\n"
    assert any("restic backup" in c and "ssh" not in c for c in watch.seen), (
        "restic ran (as the remote command)"
    )
    assert not [c for c in watch.seen if PASSWORD in c], "the password showed in a process list"
    assert not [c for c in watch.seen if "correct horse" in c]

    verified = verify_backup(loaded, "shop", store, seed=3)
    assert verified.ok, verified.error

    target = tmp_path / "standby-root"
    restored = restore_to_endpoint(loaded, "shop", "standby", target=str(target))
    assert len(restored.snapshots) == 2
    assert _tree(target / str(src).lstrip("/")) == _tree(src)
    dump = (target / "failover-dumps" / "sqlite-app.sql").read_text()
    assert "INSERT INTO t VALUES(99,'v99');" in dump


def test_remote_errors_have_hints(tmp_path, sshd):
    from failover.config.models import SshTarget

    bad_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(bad_key)], check=True)
    target = SshTarget(port=sshd.port, user="root", key=bad_key, known_hosts=sshd.known_hosts)
    with pytest.raises(RemoteError) as info:
        Remote(target, "127.0.0.1").run(["true"], timeout=20)
    assert "ssh.key" in (info.value.hint or "")
    unknown = SshTarget(
        port=sshd.port, user="root", key=sshd.key, known_hosts=tmp_path / "empty_known_hosts"
    )
    with pytest.raises(RemoteError) as info:
        Remote(unknown, "127.0.0.1").run(["true"], timeout=20)
    assert "known_hosts" in (info.value.hint or "")
    ok = SshTarget(port=sshd.port, user="root", key=sshd.key, known_hosts=sshd.known_hosts)
    out = Remote(ok, "127.0.0.1").run(
        ["sh", "-c", 'printf %s "$SECRET_X"'], env_secrets={"SECRET_X": "s3cr3t value"}
    )
    assert out.text == "s3cr3t value"


def test_sftp_repository(tmp_path, restic_bin, sshd, config_factory, store_for):
    src = make_source(tmp_path, files=3)
    repo_dir = tmp_path / "sftp-repo"
    loaded = config_factory(
        {
            "repository": f"sftp:root@127.0.0.1:{repo_dir}",
            "options": [f"sftp.command={sshd.ssh_command('root')} 127.0.0.1 -s sftp"],
            "paths": [str(src)],
            "verify_sample": 2,
        }
    )
    store = store_for(loaded)
    assert run_backup(loaded, store, "shop").ok
    assert (repo_dir / "config").exists()
    verified = verify_backup(loaded, "shop", store)
    assert verified.ok, verified.error
    target = tmp_path / "out"
    restore_to_path(loaded, "shop", target)
    assert _tree(target / str(src).lstrip("/")) == _tree(src)


def test_unreadable_file_is_a_warning(session_dir, restic_bin, sshd_pam, config_factory, store_for):
    """restic as an unprivileged user over SSH: one file it cannot read gives exit 3, a
    snapshot with a warning; the run counts as done."""
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        require(False, "needs an unprivileged login user (postgres)")
    base = session_dir / "unreadable"
    src = base / "src"
    src.mkdir(parents=True)
    (src / "ok.txt").write_text("readable\n")
    secret = src / "secret.txt"
    secret.write_text("root only\n")
    secret.chmod(0o000)
    for path in (base / "repo", base / "cache"):
        path.mkdir()
        os.chown(path, pw.pw_uid, pw.pw_gid)
    base.chmod(0o755)
    src.chmod(0o755)
    sshd = sshd_pam
    target = sshd.ssh_target("postgres")
    loaded = config_factory(
        {
            "repository": str(base / "repo"),
            "source": "primary",
            "paths": [str(src)],
            "cache_dir": str(base / "cache"),
        },
        endpoints={"primary": {"address": "127.0.0.1", "ssh": target}},
    )
    store = store_for(loaded)
    result = run_backup(loaded, store, "shop")
    assert result.ok
    assert result.parts["files"].partial
    assert any("secret.txt" in w for w in result.warnings)
    assert load_state(store, "shop")["last_attempt_ok"] == 1


def test_remote_dump_failure_makes_no_snapshot(
    tmp_path, restic_bin, sshd, config_factory, store_for
):
    """The dump pipeline on the server: a failing dump interrupts restic before it can see the
    end of its input, and nothing is left running there."""
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "source": "primary",
            "databases": [
                {
                    "type": "sqlite",
                    "path": str(tmp_path / "app.db"),
                    "command": "printf 'BEGIN;\\n'; sleep 0.3; echo 'disk full' >&2; exit 5",
                }
            ],
        },
        endpoints={"primary": {"address": "127.0.0.1", "ssh": sshd.ssh_target()}},
    )
    store = store_for(loaded)

    def sleepers() -> set[str]:
        out = subprocess.run(["pgrep", "-f", "^sleep 3600$"], capture_output=True, text=True)
        return set(out.stdout.split())

    before = sleepers()
    result = run_backup(loaded, store, "shop", check=False)
    assert not result.ok
    assert "dump failed" in (result.error or "") and "disk full" in (result.error or "")
    assert list_snapshots(loaded, "shop") == []
    assert not os.listdir(tmp_path / "repo" / "locks")
    assert not sleepers() - before, "the dump side's placeholder was left running"
