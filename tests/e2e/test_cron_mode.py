"""Cron mode (`failover check` once a minute) is never blocked by long work: a due backup
runs in a detached worker while the next rounds go on, and a round that finds the previous
one still probing steps aside quietly. Real restic (a local repository), a real web server
on loopback, the CLI as a subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_binary, wait_for, write
from tests.support.cli import REPO, failover
from tests.support.web import LoopbackWeb

pytestmark = pytest.mark.e2e


def rounds(state: Path) -> int:
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0])
    finally:
        conn.close()


def config(
    tmp_path: Path, web_port: int, *, slow_probe_port: int | None = None, backup: bool = True
) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "file.txt").write_text("payload\n")
    release = tmp_path / "release"
    (tmp_path / "restic.pass").write_text("cron-mode-test\n")
    (tmp_path / "restic.pass").chmod(0o600)
    checks = f"      - {{type: http, port: {web_port}, expect_body: Shop, timeout: 3s}}\n"
    if slow_probe_port:
        # long enough that the rounds started meanwhile find it still probing on a busy machine
        checks += f"      - {{type: http, port: {slow_probe_port}, timeout: 10s}}\n"
    block = (
        f"""    backup:
      repository: {tmp_path / "repo"}
      password: file:{tmp_path / "restic.pass"}
      source: local
      paths: [{data}]
      every: 1h
      before: ["n=0; while [ ! -e {release} ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done"]
      timeout: 2m
"""
        if backup
        else ""
    )
    return write(
        tmp_path / "failover.yaml",
        f"""\
state: state.db
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {{address: 127.0.0.1}}
    checks:
{checks}    policy: {{interval: {"15s" if slow_probe_port else "5s"}, down_after: 30s, up_after: 5s}}
{block}""",
    )


def test_a_long_backup_never_blocks_the_next_rounds(tmp_path: Path) -> None:
    require_binary("restic")
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<title>Shop</title>")
    web = LoopbackWeb(root).start()
    try:
        cfg = config(tmp_path, web.port)
        state = tmp_path / "state.db"
        first = failover("check", config=cfg, timeout=60)
        assert first.returncode == 0, first.stderr
        # check returned while the backup still waits for its before-command: it runs
        # in the background worker (inline it would have held check, and the lock, here)
        assert "started backup:shop in the background" in first.stderr, first.stderr
        jobs = tmp_path / "state.db.jobs"
        assert (jobs / "backup_shop.lock").exists()
        status = failover("status", "--json", config=cfg, check=True).stdout
        assert '"backup:shop"' in status, status  # status shows the running job
        for n in (2, 3):  # the next minutes' rounds probe as usual meanwhile
            nxt = failover("--quiet", "check", config=cfg, timeout=60)
            assert nxt.returncode == 0 and nxt.stderr == "", nxt.stderr
            assert rounds(state) == n
        (tmp_path / "release").touch()
        listed = lambda: '"short_id"' in failover("backup", "list", "--json", config=cfg).stdout  # noqa: E731
        wait_for(listed, 60, "the background backup's snapshot")
        done = lambda: "backup:shop done" in (jobs / "worker.log").read_text()  # noqa: E731
        wait_for(done, 60, "the worker to finish")
        log = (jobs / "worker.log").read_text()
        assert "backup:shop started" in log and "backup:shop done" in log, log
        assert log.count("backup:shop started") == 1  # never started twice
    finally:
        (tmp_path / "release").touch()  # never leave the worker waiting
        web.stop()


def test_a_round_refused_because_the_previous_one_still_probes_is_quiet(tmp_path: Path) -> None:
    """A listener that never answers makes the first round last its 10 s timeout; the check
    cron starts meanwhile steps aside: exit 0, nothing on stderr under --quiet."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<title>Shop</title>")
    web = LoopbackWeb(root).start()
    try:
        cfg = config(tmp_path, web.port, slow_probe_port=silent.getsockname()[1], backup=False)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        slow = subprocess.Popen(
            [sys.executable, "-m", "failover", "--config", str(cfg), "check"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        lock = tmp_path / "state.db.lock"
        wait_for(lambda: lock.read_text().endswith(" check"), 20, "the first round's lock")
        second = failover("--quiet", "check", config=cfg)
        assert slow.poll() is None, "the first round ended too soon for this test"
        assert second.returncode == 0, second.stderr
        assert second.stderr == ""  # no cron mail
        verbose = failover("check", "--json", config=cfg)
        assert slow.poll() is None, "the first round ended too soon for this test"
        assert verbose.returncode == 0
        assert '"skipped": true' in verbose.stdout
        assert "is still in its round" in verbose.stderr
        assert slow.wait(30) == 0
    finally:
        silent.close()
        web.stop()
