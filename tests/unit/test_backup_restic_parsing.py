"""Parsing restic 0.14's output (JSON where it gives JSON, text where it does not), exit
code classification, retention flags."""

from __future__ import annotations

import pytest

from failover.backup.restic_parse import (
    ResticError,
    ResticVersion,
    classify,
    dump_job,
    parse_backup_output,
    parse_check,
    parse_forget,
    parse_ls,
    parse_snapshots,
    parse_time,
    parse_version,
    redact_repository,
    retention_args,
)

SNAPSHOTS = (
    '[{"time":"2026-11-26T09:32:32.609868497Z","tree":"4e29","paths":["/tmp/rx/src"],'
    '"hostname":"vm","username":"root","id":"763e9d9c633d1848","short_id":"763e9d9c"},'
    '{"time":"2026-11-26T10:32:33.309105191+01:00","parent":"763e","tree":"4e29",'
    '"paths":["/failover-dumps/pg.sql"],"hostname":"shop","username":"root",'
    '"tags":["site:shop","part:postgres-shop"],"id":"ebb478697e4f1de0","short_id":"ebb47869"}]'
)


def test_version():
    v = parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n")
    assert v == ResticVersion(0, 14, 0) and str(v) == "0.14.0"
    assert v.at_least(0, 14) and not v.at_least(0, 16)
    with pytest.raises(ResticError):
        parse_version("something else")


def test_times_and_snapshots():
    assert parse_time("2026-11-26T09:32:32Z") == pytest.approx(1795685552.0)
    assert parse_time("2026-11-26T09:32:32.609868497Z") == pytest.approx(1795685552.609868)
    snaps = parse_snapshots(SNAPSHOTS)
    assert [s.short_id for s in snaps] == ["763e9d9c", "ebb47869"]
    assert snaps[1].time - snaps[0].time == pytest.approx(0.7, abs=0.01)
    assert snaps[1].tags == ("site:shop", "part:postgres-shop") and snaps[0].tags == ()
    assert parse_snapshots("[]") == [] and parse_snapshots("null") == []


def test_backup_output():
    lines = [
        '{"message_type":"status","percent_done":0,"total_files":1,"total_bytes":6}',
        "some text warning",
        '{"message_type":"summary","files_new":2,"data_added":101051,'
        '"total_bytes_processed":100006,"total_duration":0.21,"snapshot_id":"763e9d9c"}',
    ]
    summary, other = parse_backup_output(lines)
    assert summary is not None and summary["snapshot_id"] == "763e9d9c"
    assert other == ["some text warning"]


def test_forget_output_followed_by_prune_text():
    text = (
        '[{"tags":null,"host":"vm","paths":["/a"],"keep":[{"id":"k1"}],'
        '"remove":[{"id":"r1"},{"id":"r2"}]}]\nloading indexes...\n'
        "[0:00] 100.00%  2 / 2 snapshots\ndone\n"
    )
    assert parse_forget(text) == (["k1"], ["r1", "r2"])
    assert parse_forget("") == ([], [])


def test_check_text():
    ok = parse_check(
        0,
        "using temporary cache in /x\nload indexes\ncheck all packs\n"
        "check snapshots, trees and blobs\n[0:00] 100.00%  2 / 2 snapshots\n\n"
        "no errors were found\n",
    )
    assert ok.ok and ok.errors == []
    bad = parse_check(
        1,
        "check all packs\nerror: pack 1234 contains 1 errors: [blob 55: "
        "decrypting blob failed]\nFatal: repository contains errors\n",
    )
    assert not bad.ok and len(bad.errors) == 2


def test_ls_json():
    text = (
        '{"time":"2026-11-26T09:35:06Z","paths":["/dumps/pg.sql"],"id":"267a",'
        '"struct_type":"snapshot"}\n'
        '{"name":"dumps","type":"dir","path":"/dumps","struct_type":"node"}\n'
        '{"name":"pg.sql","type":"file","path":"/dumps/pg.sql","size":3,'
        '"mtime":"2026-11-26T09:35:06Z","struct_type":"node"}\n'
    )
    nodes = parse_ls(text)
    assert [(n.path, n.type, n.size) for n in nodes] == [
        ("/dumps", "dir", None),
        ("/dumps/pg.sql", "file", 3),
    ]


@pytest.mark.parametrize(
    ("code", "stderr", "kind"),
    [
        (0, "", None),
        (
            3,
            "error: open /x: permission denied\nWarning: at least one source file could not be read",
            None,
        ),
        (10, "", "no_repository"),
        (11, "", "locked"),
        (12, "", "wrong_password"),
        (1, "Fatal: wrong password or no key found\n", "wrong_password"),
        (
            1,
            "Fatal: unable to open config file: stat /r/config: no such file or directory\n"
            "Is there a repository at the following location?\n/r",
            "no_repository",
        ),
        (
            1,
            'Fatal: unable to open config file: Stat: Head "http://127.0.0.1:1/b/config": dial tcp '
            "127.0.0.1:1: connect: connection refused\nIs there a repository at the following "
            "location?",
            "unreachable",
        ),
        (
            1,
            "unable to create lock in backend: repository is already locked exclusively by PID 1",
            "locked",
        ),
        (97, "failover: dump command failed with exit status 1", "dump_failed"),
        (130, "signal interrupt received, cleaning up", "interrupted"),
        (1, "Fatal: something else", "fatal"),
    ],
)
def test_classify(code, stderr, kind):
    assert classify(code, stderr) == kind


def test_retention_args():
    assert retention_args({"last": 7, "daily": 14, "weekly": None}) == [
        "--keep-last",
        "7",
        "--keep-daily",
        "14",
    ]
    assert retention_args(None) == []
    with pytest.raises(ValueError):
        retention_args({"last": None})
    with pytest.raises(ValueError):
        retention_args({"forever": 1})


def test_redaction_and_dump_job():
    assert (
        redact_repository("rest:https://user:pw@host:8000/repo")
        == "rest:https://***@host:8000/repo"
    )
    assert redact_repository("/var/backups/x") == "/var/backups/x"
    job = dump_job("pg_dump shop", ["RESTIC_PASSWORD", "AWS_SECRET_ACCESS_KEY"], ["PGPASSWORD"])
    assert "unset RESTIC_PASSWORD AWS_SECRET_ACCESS_KEY;" in job
    assert "unset PGPASSWORD;" in job and "pg_dump shop" in job


def test_extra_paths_are_what_the_snapshot_lacks_under_the_backed_up_paths_only() -> None:
    from failover.backup.restic_parse import extra_paths, restore_delete_args

    snap = ["/srv", "/srv/site", "/srv/site/index.html", "/srv/site/data", "/srv/site/data/a.csv"]
    present = [
        "/srv/site/index.html",
        "/srv/site/data/a.csv",
        "/srv/site/data/deleted.csv",  # deleted on the standby during the outage
        "/srv/site/old",  # a whole directory the snapshot lacks ...
        "/srv/site/old/x",  # ... goes with what it holds (not listed twice)
        "/srv/site/cache/c1",  # excluded from the backup: never removed
        "/srv/site/app.log",  # excluded by a basename pattern
        "/srv/other/thing",  # outside the backed-up paths: not ours
    ]
    got = extra_paths(snap, present, ["/srv/site"], ["/srv/site/cache", "*.log"])
    assert got == ["/srv/site/data/deleted.csv", "/srv/site/old"]
    assert extra_paths(snap, ["/srv/site"], ["/srv/site/"], []) == []  # never the root itself
    assert restore_delete_args("abcd1234", "/srv/site", "/") == [
        "restore", "abcd1234:/srv/site", "--target", "/srv/site", "--delete",
    ]  # fmt: skip
