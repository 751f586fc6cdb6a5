"""What a backup set is made of, and how its snapshots are told apart: PURE.

A set is backed up as parts: its paths as one (`files`), each database dump as one more
(the dump command's output stored as one file under failover-dumps/). Every snapshot is
tagged `site:NAME`, `part:PART` and `run:ID` (one id per backup run) and made with the set's
host name; the functions here build those and pick snapshots by them.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from failover.backup.restic_parse import Snapshot

if TYPE_CHECKING:
    from failover.config.backup import BackupSet, MysqlDump, PostgresDump, SqliteDump

DUMP_DIR = "failover-dumps"
FILES_PART = "files"


@dataclass
class Part:
    name: str  # "files" or the dump's label
    paths: list[str]  # for files
    command: str | None = None
    filename: str | None = None  # path inside the snapshot for a dump (no leading /)
    secrets: dict[str, str] = field(default_factory=dict)


def host_of(site: str, bset: BackupSet) -> str:
    return str(bset.host or site)


def site_tags(site: str) -> list[str]:
    return [f"site:{site}"]


def part_tag(part: str) -> str:
    return f"part:{part}"


def _postgres(db: PostgresDump) -> tuple[str, dict[str, str]]:
    argv = [db.pg_dump, "--no-password"]
    if db.host:
        argv += ["-h", db.host]
    if db.port:
        argv += ["-p", str(db.port)]
    if db.user:
        argv += ["-U", db.user]
    if db.format == "custom":
        argv += ["-Fc"]
    argv += [*db.extra_args, "--", db.name]
    secrets = {"PGPASSWORD": db.password.reveal()} if db.password is not None else {}
    return shlex.join(argv), secrets


def _mysql(db: MysqlDump) -> tuple[str, dict[str, str]]:
    argv = [db.mysqldump, "--single-transaction", "--routines", "--events", "--triggers"]
    if db.host:
        argv += ["-h", db.host]
    if db.port:
        argv += ["-P", str(db.port)]
    if db.socket:
        argv += ["-S", db.socket]
    if db.user:
        argv += ["-u", db.user]
    argv += [*db.extra_args, "--databases", db.name]
    secrets = {"MYSQL_PWD": db.password.reveal()} if db.password is not None else {}
    return shlex.join(argv), secrets


def _sqlite(db: SqliteDump) -> tuple[str, dict[str, str]]:
    """An online, consistent dump (one read transaction)."""
    probe = shlex.join(
        [db.sqlite3, "-bail", "-readonly", db.path, "SELECT count(*) FROM sqlite_master"]
    )
    dump = shlex.join([db.sqlite3, "-bail", "-readonly", *db.extra_args, db.path, ".dump"])
    return f"{probe} >/dev/null && {dump}", {}


def dump_parts(bset: BackupSet) -> list[Part]:
    """One part per database: its dump command (the configured `command` wins), the
    secrets given to that command only, and the file it is stored as."""
    parts = []
    for db in bset.databases:
        name = db.dump_name or f"{db.label}.sql"
        if db.type == "postgres":
            command, secrets = _postgres(db)
        elif db.type == "sqlite":
            command, secrets = _sqlite(db)
        else:  # mysql, mariadb
            command, secrets = _mysql(db)
        if db.command:
            command = db.command
        parts.append(
            Part(
                name=db.dump_name or db.label,
                paths=[],
                command=command,
                filename=f"{DUMP_DIR}/{name}",
                secrets=secrets,
            )
        )
    return parts


def parts_of(bset: BackupSet) -> list[Part]:
    parts = [Part(name=FILES_PART, paths=list(bset.paths))] if bset.paths else []
    return parts + dump_parts(bset)


# --- picking snapshots by their tags ------------------------------------------------------


def _tag_value(snap: Snapshot, prefix: str) -> str | None:
    return next((t[len(prefix) :] for t in snap.tags if t.startswith(prefix)), None)


def latest_per_part(
    names: Iterable[str], snapshots: Sequence[Snapshot]
) -> dict[str, Snapshot | None]:
    """The newest snapshot of each named part (None for a part without one)."""
    out: dict[str, Snapshot | None] = dict.fromkeys(names)
    for snap in snapshots:
        for tag in snap.tags:
            if tag.startswith("part:") and tag[5:] in out:
                current = out[tag[5:]]
                if current is None or snap.time > current.time:
                    out[tag[5:]] = snap
    return out


def newest_complete_run(names: Sequence[str], snapshots: Sequence[Snapshot]) -> Snapshot | None:
    """The main snapshot (the first part's) of the newest run that has every named part,
    with the time of that run's oldest part. None when no run is complete."""
    by_run: dict[str, dict[str, Snapshot]] = {}
    for snap in snapshots:
        run = next((t for t in snap.tags if t.startswith("run:")), None)
        part = _tag_value(snap, "part:")
        if run and part:
            by_run.setdefault(run, {})[part] = snap
    complete = [parts for parts in by_run.values() if all(n in parts for n in names)]
    if not complete:
        return None
    best = max(complete, key=lambda parts: min(parts[n].time for n in names))
    main = best[names[0]]
    oldest = min(best[n].time for n in names)
    return Snapshot(
        id=main.id,
        short_id=main.short_id,
        time=oldest,
        paths=main.paths,
        hostname=main.hostname,
        tags=main.tags,
        tree=main.tree,
        parent=main.parent,
    )


def same_run(snapshots: Sequence[Snapshot], prefix: str) -> list[Snapshot]:
    """The snapshot whose id starts with prefix and the other parts of its run (restored
    together); [] when no snapshot has that id."""
    found = [s for s in snapshots if s.id.startswith(prefix)]
    if not found:
        return []
    run_tag = next((t for t in found[0].tags if t.startswith("run:")), None)
    return [s for s in snapshots if run_tag in s.tags] if run_tag else found[:1]
