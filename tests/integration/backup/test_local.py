"""A local repository, a local source with an SQLite dump: back up, retain, verify, restore,
freshness; and the faults that need no other server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from failover.backup.hook import backup_status, status_section
from failover.backup.journal import runs
from failover.backup.restic import Restic
from failover.backup.restore import restore_to_path
from failover.backup.run import list_snapshots, newest_snapshot, repository_lock, run_backup
from failover.backup.verify import verify_backup
from failover.errors import BackupError
from tests.integration.backup.conftest import PASSWORD, make_source
from tests.support import require_binary


def _sqlite_db(path: Path, rows: int = 200) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT, qty INTEGER)")
    conn.executemany(
        "INSERT INTO orders(item, qty) VALUES (?, ?)", [(f"item-{i}", i % 7) for i in range(rows)]
    )
    conn.commit()
    conn.close()


def _rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM orders ORDER BY id").fetchall()
    finally:
        conn.close()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_local_round_trip(tmp_path, restic_bin, config_factory, store_for, hook_round):
    src = make_source(tmp_path)
    db = tmp_path / "app.db"
    _sqlite_db(db)
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "paths": [str(src)],
            "exclude": ["*.tmp"],
            "databases": [{"type": "sqlite", "path": str(db)}],
            "retention": {"last": 2},
            "every": "1h",
            "max_age": "1h",
            "verify_sample": 4,
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    store = store_for(loaded)
    first = hook_round(loaded, store)
    assert first.spawned == ["backup:shop"]
    assert [(e.site, e.title, e.level) for e in first.events] == [
        ("shop", "backup of shop: fresh", "success")
    ]
    # Not due again within the hour: nothing runs, nothing changes.
    again = hook_round(loaded, store)
    assert again.spawned == [] and again.events == []
    assert len(runs(store, "shop", "backup")) == 1

    # Change the data, back up twice more: retention keeps the last 2 of each part.
    (src / "file0.txt").write_text("changed\n")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO orders(item, qty) VALUES ('late', 1)")
    run_backup(loaded, store, "shop")
    result = run_backup(loaded, store, "shop")
    assert result.ok and result.forgotten >= 2
    snaps = list_snapshots(loaded, "shop")
    parts = sorted(t for s in snaps for t in s.tags if t.startswith("part:"))
    assert parts == ["part:files", "part:files", "part:sqlite-app", "part:sqlite-app"]

    newest = newest_snapshot(loaded, "shop")
    assert newest is not None and newest.id.startswith(result.id)

    verified = verify_backup(loaded, "shop", store, seed=1)
    assert verified.ok, verified.error
    assert verified.check_ok
    assert len(verified.files) == 4
    assert any(f["path"].endswith("sqlite-app.sql") for f in verified.files)
    assert runs(store, "shop", "verify")[0]["ok"] == 1

    # Restore the run by its main snapshot id: files and the dump come back together.
    target = tmp_path / "restored"
    restored = restore_to_path(loaded, "shop", target, snapshot=result.short_id)
    assert len(restored.snapshots) == 2
    got = _tree(target / str(src).lstrip("/"))
    want = {k: v for k, v in _tree(src).items() if not k.endswith(".tmp")}
    assert got == want
    dump = (target / "failover-dumps" / "sqlite-app.sql").read_text()
    copy = tmp_path / "copy.db"
    subprocess.run(["sqlite3", str(copy)], input=dump, text=True, check=True)
    assert _rows(copy) == _rows(db)

    # Freshness: the snapshot is older than max_age an hour and a half later.
    later = time.time() + 5400
    status = {s["site"]: s for s in backup_status(loaded, store, later)}
    assert status["shop"]["health"] == "stale"
    section = status_section(loaded, store, "shop")
    assert section["backup"]["health"] == "fresh"
    assert PASSWORD not in repr(section) and PASSWORD not in repr(status)
    rows = store.conn.execute("SELECT * FROM backup_runs").fetchall()
    assert all(PASSWORD not in repr(tuple(r)) for r in rows)


def test_wrong_password_and_missing_repository(
    tmp_path, restic_bin, config_factory, store_for, hook_round
):
    repo = tmp_path / "repo"
    Restic(str(repo), "another password").init()
    src = make_source(tmp_path, files=2)
    loaded = config_factory({"repository": str(repo), "paths": [str(src)], "every": "1h"})
    store = store_for(loaded)
    result = run_backup(loaded, store, "shop", check=False)
    assert not result.ok
    assert "wrong_password" in (result.error or "")
    assert PASSWORD not in (result.error or "")
    done = hook_round(loaded, store)  # retry not yet due: health says failing
    assert [e.title for e in done.events] == ["backup of shop: failing"]

    missing = Restic(str(tmp_path / "nothing-here"), PASSWORD)
    with pytest.raises(BackupError) as info:
        missing.snapshots()
    assert info.value.kind == "no_repository"  # type: ignore[attr-defined]


def test_failing_dump_makes_no_snapshot(tmp_path, restic_bin, config_factory, store_for):
    src = make_source(tmp_path, files=1)
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "paths": [str(src)],
            "databases": [
                {"type": "sqlite", "path": str(tmp_path / "missing.db")},
                {
                    "type": "sqlite",
                    "path": str(tmp_path / "x.db"),
                    "dump_name": "half.sql",
                    "command": "echo 'CREATE TABLE half(a);'; echo oops >&2; exit 3",
                },
            ],
        }
    )
    store = store_for(loaded)
    result = run_backup(loaded, store, "shop", check=False)
    assert not result.ok
    assert "dump failed" in (result.error or "")
    assert "missing.db" in (result.error or "") or "unable to open" in (result.error or "")
    snaps = list_snapshots(loaded, "shop")
    assert [t for s in snaps for t in s.tags if t.startswith("part:")] == ["part:files"]

    # The half-written dump (exit 3 after some output) is not snapshotted either.
    loaded2 = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "paths": [str(src)],
            "databases": [
                {
                    "type": "sqlite",
                    "path": str(tmp_path / "x.db"),
                    "dump_name": "half.sql",
                    "command": "echo 'CREATE TABLE half(a);'; echo oops >&2; exit 3",
                }
            ],
        }
    )
    with pytest.raises(BackupError, match="exit status 3"):
        run_backup(loaded2, store, "shop")
    assert not any("part:half.sql" in s.tags for s in list_snapshots(loaded2, "shop"))
    assert not os.listdir(tmp_path / "repo" / "locks")


def test_killed_backup_then_clean_run(tmp_path, restic_bin, config_factory, store_for):
    """restic killed (SIGKILL) half way: its lock stays; the next run removes it as stale,
    succeeds, prunes, and the repository checks clean."""
    src = tmp_path / "big"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(os.urandom(40_000_000))
    repo = tmp_path / "repo"
    loaded = config_factory(
        {"repository": str(repo), "paths": [str(src)], "retention": {"last": 1}, "verify_sample": 2}
    )
    restic = Restic(str(repo), PASSWORD)
    restic.init()
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [restic_bin, "backup", "--json", str(src)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until it has started uploading
        if b'"bytes_done"' in line:
            break
    proc.kill()
    proc.wait()
    assert os.listdir(repo / "locks"), "a killed restic leaves its lock"
    store = store_for(loaded)
    result = run_backup(loaded, store, "shop")
    assert result.ok
    assert not os.listdir(repo / "locks")
    verified = verify_backup(loaded, "shop", store)
    assert verified.ok, verified.error


def test_repository_lock_prevents_overlap(tmp_path, restic_bin, config_factory):
    loaded = config_factory({"repository": str(tmp_path / "repo"), "paths": [str(tmp_path)]})
    with repository_lock(loaded, str(tmp_path / "repo")):
        result = run_backup(loaded, None, "shop", check=False)
    assert not result.ok and "another backup job" in (result.error or "")


def test_live_lock_of_another_host_is_never_removed(
    tmp_path, restic_bin, config_factory, store_for
):
    """A lock restic cannot prove stale (another host's, fresh) stays: the run that needs an
    exclusive lock fails as locked rather than break a live backup's lock."""
    require_binary("unshare")
    src = make_source(tmp_path, files=2)
    repo = tmp_path / "repo"
    loaded = config_factory(
        {
            "repository": str(repo),
            "paths": [str(src)],
            "retention": {"last": 1},
            "stale_lock_age": "2h",
        }
    )
    Restic(str(repo), PASSWORD).init()
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": PASSWORD}
    # A restic on "another host" (its own UTS namespace) holding a lock, killed -9.
    holder = subprocess.Popen(
        [
            "unshare",
            "-u",
            "sh",
            "-c",
            f"hostname elsewhere && exec {restic_bin} backup --stdin --stdin-filename x",
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def lock_written() -> bool:
        # the whole lock, not a file restic has created but not yet written (killed in
        # between, on a loaded machine, it would be no lock at all)
        files = list((repo / "locks").iterdir())
        return bool(files) and all(f.stat().st_size > 0 for f in files)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not lock_written():
        time.sleep(0.05)
    time.sleep(0.2)
    holder.kill()
    holder.wait()
    locks = os.listdir(repo / "locks")
    assert locks and lock_written()
    store = store_for(loaded)
    result = run_backup(loaded, store, "shop", check=False)
    assert not result.ok and "locked" in (result.error or "")
    assert os.listdir(repo / "locks") == locks


def test_agent_hook_and_status_section(tmp_path, restic_bin, config_factory, store_for, hook_round):
    src = make_source(tmp_path, files=2)
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "paths": [str(src)],
            "every": "1h",
            "verify_every": None,
        }
    )
    store = store_for(loaded)

    first = hook_round(loaded, store)  # the backup runs in "spawn", inline as under cron
    assert first.spawned == ["backup:shop"]
    again = hook_round(loaded, store)
    assert again.spawned == []  # not due again
    assert [(e.kind, e.site, e.level) for e in first.events + again.events] == [
        ("backup", "shop", "success")
    ]
    section = status_section(loaded, store, "shop")
    assert section["backup"]["health"] == "fresh" and "warnings" not in section
