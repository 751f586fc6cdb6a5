"""The pure pieces split out of the backup runner: a set's parts and dump commands, picking
snapshots by their tags, restic's arguments, what is due, the test restore's sample."""

from __future__ import annotations

import random

import pytest
import yaml

from failover.backup.parts import (
    latest_per_part,
    newest_complete_run,
    parts_of,
    same_run,
)
from failover.backup.restic_parse import (
    Node,
    Snapshot,
    backup_args,
    forget_args,
    lock_ids,
    redact_output,
    restic_error,
    restore_args,
    snapshots_args,
)
from failover.backup.schedule import read_due, work_due
from failover.backup.verify import choose_sample
from failover.config.load import parse_config

H = 3600.0


def bset(**backup):
    data = {
        "sites": {
            "shop": {
                "hostname": "shop.example.test",
                "endpoints": {"primary": {"address": "127.0.0.1"}},
                "checks": [{"type": "tcp", "port": 80}],
                "backup": {"repository": "/srv/repo", "password": "${PW}", **backup},
            }
        }
    }
    loaded = parse_config(yaml.safe_dump(data), "f.yaml", env={"PW": "pw", "DBPW": "db-secret"})
    return loaded.config.sites["shop"].backup


def snap(id, time, *tags):
    return Snapshot(id=id, short_id=id[:8], time=time, paths=("/x",), hostname="h", tags=tags)


def test_parts_and_dump_commands():
    parts = parts_of(
        bset(
            paths=["/srv/www"],
            databases=[
                {"type": "postgres", "name": "shop", "user": "app", "password": "${DBPW}"},
                {"type": "mysql", "name": "blog", "port": 3307},
                {"type": "sqlite", "path": "/srv/app.db"},
            ],
        )
    )
    assert [p.name for p in parts] == ["files", "postgres-shop", "mysql-blog", "sqlite-app"]
    files, pg, my, lite = parts
    assert files.paths == ["/srv/www"] and files.command is None
    assert pg.command == "pg_dump --no-password -U app -- shop"
    assert pg.secrets == {"PGPASSWORD": "db-secret"} and "db-secret" not in pg.command
    assert pg.filename == "failover-dumps/postgres-shop.sql"
    assert my.command is not None and "-P 3307" in my.command and my.secrets == {}
    assert lite.command is not None and lite.command.endswith("/srv/app.db .dump")


def test_latest_and_newest_complete_run():
    snaps = [
        snap("a" * 16, 100, "part:files", "run:1"),
        snap("b" * 16, 101, "part:db", "run:1"),
        snap("c" * 16, 200, "part:files", "run:2"),  # run 2 has no dump: incomplete
    ]
    latest = latest_per_part(["files", "db", "other"], snaps)
    assert {k: v and v.id[0] for k, v in latest.items()} == {
        "files": "c",
        "db": "b",
        "other": None,
    }
    newest = newest_complete_run(["files", "db"], snaps)
    assert newest is not None and newest.id == "a" * 16 and newest.time == 100
    assert newest_complete_run(["files", "db", "other"], snaps) is None
    assert [s.id[0] for s in same_run(snaps, "bbbb")] == ["a", "b"]
    assert same_run(snaps, "zzzz") == []
    untagged = [snap("d" * 16, 5)]
    assert same_run(untagged, "dd") == untagged


def test_restic_arguments():
    assert backup_args(["/a"], stdin_filename=None, exclude=["*.tmp"], tags=["t1", "t2"]) == [
        "backup",
        "--json",
        "--exclude",
        "*.tmp",
        "--tag",
        "t1",
        "--tag",
        "t2",
        "--",
        "/a",
    ]
    assert backup_args([], stdin_filename="d/x.sql", host="h")[-5:] == [
        "--host",
        "h",
        "--stdin",
        "--stdin-filename",
        "d/x.sql",
    ]
    with pytest.raises(ValueError):
        backup_args([], stdin_filename=None)
    assert snapshots_args(tags=["a", "b"], latest=1) == [
        "snapshots",
        "--json",
        "--tag",
        "a,b",
        "--latest",
        "1",
    ]
    assert forget_args({"last": 2}, tags=["site:s"], host="h") == [
        "forget",
        "--json",
        "--keep-last",
        "2",
        "--group-by",
        "host,paths",
        "--tag",
        "site:s",
        "--host",
        "h",
        "--prune",
    ]
    assert restore_args("latest", "/t", include=["/x"], tags=["p"]) == [
        "restore",
        "latest",
        "--target",
        "/t",
        "--tag",
        "p",
        "--include",
        "/x",
    ]


def test_errors_locks_and_redaction():
    err = restic_error(
        "backup",
        1,
        "using temporary cache in /tmp\nFatal: wrong password\n",
        where="r",
        description="d",
    )
    assert err.kind == "wrong_password" and "Fatal: wrong password" in str(err)
    assert err.hint
    missing = restic_error("init", 127, "", where="r", description="web (root@web:22)")
    assert missing.kind == "not_installed" and "web (root@web:22)" in str(missing)
    lock = "ab" * 32
    assert lock_ids(f"{lock}\nnot a lock\n") == [lock]
    text = redact_output("\x1b[2Ks3://key:sec@host/b pw=hunter22 x=abc", ["hunter22", "abc"])
    assert text == "s3://***@host/b pw=*** x=abc"


def test_work_due():
    now = 1_000_000.0
    b = bset(paths=["/srv"], every="1h", max_age="2h", verify_every="1d")
    assert work_due(b, {}, now) == ["backup", "verify", "read"]
    fresh = {"last_success": now - 60, "last_attempt": now - 60, "last_attempt_ok": 1}
    state = {**fresh, "last_verify": now - 60, "last_verify_ok": 1, "repo_read": now - 60}
    assert work_due(b, state, now) == []
    failed = {**state, "last_attempt_ok": 0}
    assert work_due(b, failed, now + 400) == ["backup"]  # retried; no verification meanwhile
    assert read_due(2 * H, now - 1801, now) and not read_due(2 * H, now - 1799, now)
    assert read_due(100 * H, now - H, now)  # at least hourly


def test_sample_keeps_every_dump():
    files, dump = snap("f" * 16, 1), snap("d" * 16, 1)
    listed = [Node(f"/srv/f{i}", "file", 10, None) for i in range(10)]
    listed += [Node("/srv", "dir", None, None), Node("/srv/[odd]", "file", 1, None)]
    chosen = choose_sample(
        {"files": (files, listed), "db": (dump, [Node("/failover-dumps/db.sql", "file", 5, None)])},
        3,
        random.Random(1),
    )
    assert chosen[0] == (dump, "/failover-dumps/db.sql", 5)
    assert len(chosen) == 3 and all(p.startswith("/srv/f") for _, p, _ in chosen[1:])
