"""An S3 repository on SeaweedFS (and the server stopped under it), PostgreSQL dumps from a
real cluster restored and compared, and SIGTERM during a backup run by the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failover.backup.journal import load_state, runs
from failover.backup.restore import restore_to_path
from failover.backup.run import list_snapshots, run_backup
from failover.backup.verify import verify_backup
from failover.errors import BackupError
from tests.integration.backup.conftest import ENV, make_source
from tests.support.storage_servers import SeaweedFS


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_s3_repository_and_server_stopped(
    tmp_path, restic_bin, config_factory, store_for, hook_round
):
    src = make_source(tmp_path, files=4)
    with SeaweedFS(tmp_path / "weed") as s3:
        os.environ["FAILOVER_TEST_S3_KEY"] = s3.access_key
        os.environ["FAILOVER_TEST_S3_SECRET"] = s3.secret_key
        loaded = config_factory(
            {
                "repository": s3.repository("restic-shop"),
                "paths": [str(src)],
                "env": {
                    "AWS_ACCESS_KEY_ID": "${FAILOVER_TEST_S3_KEY}",
                    "AWS_SECRET_ACCESS_KEY": "${FAILOVER_TEST_S3_SECRET}",
                    "AWS_EC2_METADATA_DISABLED": "true",
                },
                "timeout": "12s",
                "verify_sample": 3,
                "every": "1h",
                "retry_after": "30s",
            }
        )
        store = store_for(loaded)
        assert run_backup(loaded, store, "shop").ok
        verified = verify_backup(loaded, "shop", store)
        assert verified.ok, verified.error

        s3.stop()
        started = time.monotonic()
        with pytest.raises(BackupError) as info:
            run_backup(loaded, store, "shop")
        assert time.monotonic() - started < 60
        assert "unreachable" in str(info.value) or "timed out" in str(info.value)
        # The failed run is not retried before retry_after; the health says failing.
        done = hook_round(loaded, store, later=1)
        assert done.spawned == []
        assert [e.title for e in done.events] == ["backup of shop: failing"]

        s3.start()
        time.sleep(1)
        done = hook_round(loaded, store, later=60)  # the retry is due
        assert done.spawned == ["backup:shop"]
        assert [e.title for e in done.events] == ["backup of shop: fresh"], load_state(
            store, "shop"
        )
        target = tmp_path / "out"
        restore_to_path(loaded, "shop", target)
        assert _tree(target / str(src).lstrip("/")) == _tree(src)


def test_postgres_dump_restored_and_compared(
    tmp_path, restic_bin, postgres, config_factory, store_for
):
    postgres.psql("DROP DATABASE IF EXISTS shop")
    postgres.psql("CREATE DATABASE shop")
    postgres.psql(
        "CREATE TABLE orders(id serial PRIMARY KEY, item text, price numeric(10,2), "
        "note text); INSERT INTO orders(item, price, note) SELECT 'item-' || g, "
        "g * 1.25, repeat('x', g % 50) FROM generate_series(1, 2000) g;",
        db="shop",
    )
    os.environ["FAILOVER_TEST_PG_PW"] = postgres.password
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "databases": [
                {
                    "type": "postgres",
                    "name": "shop",
                    "user": "postgres",
                    "host": "127.0.0.1",
                    "port": postgres.port,
                    "password": "${FAILOVER_TEST_PG_PW}",
                    "pg_dump": "/usr/lib/postgresql/15/bin/pg_dump",
                },
            ],
            "verify_sample": 1,
        }
    )
    store = store_for(loaded)
    result = run_backup(loaded, store, "shop")
    assert result.ok and result.parts["postgres-shop"].total_bytes_processed > 10_000
    assert verify_backup(loaded, "shop", store).ok

    target = tmp_path / "out"
    restore_to_path(loaded, "shop", target)
    dump = (target / "failover-dumps" / "postgres-shop.sql").read_text()
    postgres.psql("DROP DATABASE IF EXISTS shop_restored")
    postgres.psql("CREATE DATABASE shop_restored")
    postgres.load("shop_restored", dump)
    query = "SELECT id, item, price, note FROM orders ORDER BY id"
    assert postgres.psql(query, db="shop_restored") == postgres.psql(query, db="shop")

    # A dump that fails (no such database) fails the run and leaves no snapshot of it.
    bad = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "databases": [
                {
                    "type": "postgres",
                    "name": "nope",
                    "user": "postgres",
                    "host": "127.0.0.1",
                    "port": postgres.port,
                    "password": "${FAILOVER_TEST_PG_PW}",
                    "dump_name": "nope.sql",
                    "pg_dump": "/usr/lib/postgresql/15/bin/pg_dump",
                }
            ],
        }
    )
    with pytest.raises(BackupError, match='database "nope" does not exist'):
        run_backup(bad, store, "shop")
    assert not [s for s in list_snapshots(bad, "shop") if "part:nope.sql" in s.tags]
    assert postgres.password not in str(runs(store, "shop"))


def test_cli_and_sigterm(tmp_path, restic_bin, config_factory):
    src = make_source(tmp_path, files=3)
    big = tmp_path / "big"
    big.mkdir()
    loaded = config_factory(
        {"repository": str(tmp_path / "repo"), "paths": [str(src), str(big)], "verify_sample": 2}
    )
    cfg = str(loaded.path)
    env = {**os.environ, **ENV}
    cli = [sys.executable, "-m", "failover", "-c", cfg, "backup"]

    out = subprocess.run(
        [*cli, "run", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert '"ok": true' in out.stdout
    listed = subprocess.run(
        [*cli, "list", "shop"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and "part:" not in listed.stdout and "files" in listed.stdout
    verified = subprocess.run(
        [*cli, "verify", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert verified.returncode == 0, verified.stderr
    restored = subprocess.run(
        [*cli, "restore", "shop", "--to", str(tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "r" / str(src).lstrip("/") / "file1.txt").exists()

    # SIGTERM while restic works: forwarded as SIGINT, restic removes its lock, exit 1.
    for i in range(4):
        (big / f"f{i}").write_bytes(os.urandom(50_000_000))
    proc = subprocess.Popen(
        [*cli, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not os.listdir(tmp_path / "repo" / "locks"):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "SIGTERM" in err
    assert not os.listdir(tmp_path / "repo" / "locks")
