"""Fixtures for the backup tests: real restic, SeaweedFS S3, sshd and PostgreSQL on loopback.

Servers are session-scoped (started once); repositories are shared by tests where that is
safe, since every restic command pays ~0.5 s of key derivation.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.support import require, require_binary
from tests.support.storage_servers import Postgres, SeaweedFS, Sshd

PASSWORD = "correct horse battery staple"
ENV = {"RESTIC_TEST_PW": PASSWORD}


@pytest.fixture(scope="session")
def restic_bin() -> str:
    return require_binary("restic")


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    # Under /tmp with 0755 so that a non-root login user (postgres) can reach what it must.
    path = Path(tempfile.mkdtemp(prefix="failover-backup-tests-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sshd(session_dir: Path) -> Iterator[Sshd]:
    require_binary("sshd")
    with Sshd(session_dir / "sshd") as server:
        yield server


@pytest.fixture(scope="session")
def sshd_pam(session_dir: Path) -> Iterator[Sshd]:
    """sshd with PAM, so that a system user with a locked password may log in with a key."""
    require_binary("sshd")
    with Sshd(session_dir / "sshd-pam", use_pam=True) as server:
        yield server


@pytest.fixture(scope="session")
def seaweed(session_dir: Path) -> Iterator[SeaweedFS]:
    with SeaweedFS(session_dir / "seaweed") as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    require_binary("pg_dump")
    path = Path(tempfile.mkdtemp(prefix="failover-pg-"))
    try:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    except KeyError:
        require(False, "no postgres user (the postgresql package creates it)")
    try:
        with Postgres(path) as server:
            yield server
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_source(root: Path, files: int = 12) -> Path:
    """A small tree of files with known content (text, binary, nested, empty)."""
    src = root / "src"
    (src / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (src / f"file{i}.txt").write_text(f"file {i}\n" * (i * 50 + 1))
    (src / "sub" / "blob.bin").write_bytes(os.urandom(300_000))
    (src / "sub" / "deeper" / "empty").write_bytes(b"")
    (src / "skip.tmp").write_text("excluded")
    return src


def build_config(
    tmp: Path,
    backup: dict[str, Any],
    *,
    endpoints: dict[str, Any] | None = None,
    site: str = "shop",
) -> Any:
    """A loaded config with one site whose backup set is `backup` (state under tmp)."""
    from failover.config.load import parse_config

    data = {
        "state": str(tmp / "state" / "state.db"),
        "sites": {
            site: {
                "hostname": "shop.example.test",
                "endpoints": endpoints or {"primary": {"address": "127.0.0.1"}},
                "checks": [{"type": "tcp", "port": 9}],
                "backup": {"password": "${RESTIC_TEST_PW}", **backup},
            }
        },
    }
    text = yaml.safe_dump(data, sort_keys=False)
    path = tmp / "failover.yaml"
    path.write_text(text)
    return parse_config(text, str(path), base_dir=tmp, env={**os.environ, **ENV})


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Any]:
    def factory(backup: dict[str, Any], **kw: Any) -> Any:
        return build_config(tmp_path, backup, **kw)

    return factory


@pytest.fixture
def store_for() -> Iterator[Callable[[Any], Any]]:
    from failover.store import Store

    opened: list[Any] = []

    def open_store(loaded: Any) -> Any:
        store = Store.open(loaded.state_path)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@dataclass
class HookRound:
    """What one run of the agent's backup hook did: the keys it spawned and the
    notifications it sent (failover.notify.Event)."""

    spawned: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    def send(self, event: Any) -> None:  # the notifier's interface
        self.events.append(event)


@pytest.fixture
def hook_round(monkeypatch: pytest.MonkeyPatch) -> Callable[..., HookRound]:
    """Run `backup_hook` the way `failover check` does (failover.watch.daemon.tick): a HookContext
    whose spawn runs the work inline. later: seconds added to the hook's clock (the work
    itself runs at the real time), to see what is due then."""
    from failover.backup import hook
    from failover.hooks import HookContext

    def run(loaded: Any, store: Any, *, later: float = 0.0) -> HookRound:
        done = HookRound()

        def spawn(key: str, fn: Callable[[Any], None]) -> bool:
            done.spawned.append(key)
            fn(store)
            return True

        with monkeypatch.context() as m:
            if later:
                real = time.time
                m.setattr(hook, "time", SimpleNamespace(time=lambda: real() + later))
            hook.backup_hook(HookContext(loaded, store, done, result=None, spawn=spawn))
        return done

    return run
