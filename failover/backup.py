"""Backups of a site: run a backup set, apply retention, prove it restores, know how fresh it is.

A run backs up the set's paths as one snapshot and each database dump as one more (streamed
into `restic backup --stdin`, no temporary file), all tagged `site:NAME` and `part:PART`
with the set's host name, then forgets and prunes by the retention policy. The set is only as
fresh as its stalest part. restic runs where the data is: on this machine (`source: local`)
or on an endpoint over SSH, with the repository secrets sent through the SSH channel.

Two runs on one repository never overlap (an flock beside the state file); stale restic
locks are removed with `restic unlock` (restic's own staleness rule) when a command finds
the repository locked, or, with `stale_lock_age`, every lock older than that.

The agent calls `backup_tick()` every round; the failover runbook calls `restore_to_path()`
and `restore_to_endpoint()`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from failover.errors import BackupError, FailoverError, RemoteError, UsageError
from failover.logs import get_logger
from failover.restic import (
    BackupSummary,
    LocalRunner,
    RemoteRunner,
    Restic,
    ResticError,
    Snapshot,
    redact_repository,
)

log = get_logger("backup")

DUMP_DIR = "failover-dumps"
FILES_PART = "files"
HEALTHS = ("fresh", "stale", "failing", "unknown")

SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_runs (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,          -- backup, verify
    started REAL NOT NULL,
    finished REAL,
    ok INTEGER,                  -- NULL while running (or killed)
    snapshots TEXT,              -- JSON: {part: snapshot id}
    warning TEXT,
    error TEXT,
    detail TEXT                  -- JSON
);
CREATE INDEX IF NOT EXISTS backup_runs_by_site ON backup_runs(site, kind, started);
CREATE TABLE IF NOT EXISTS backup_state (
    site TEXT PRIMARY KEY,
    health TEXT NOT NULL DEFAULT 'unknown',
    newest_snapshot REAL,        -- time of the set's stalest part's newest snapshot
    snapshot_ids TEXT,           -- JSON: {part: newest snapshot id}
    last_attempt REAL,
    last_attempt_ok INTEGER,
    last_success REAL,           -- start of the last successful backup run
    last_verify REAL,
    last_verify_ok INTEGER,
    repo_read REAL,              -- when the repository's snapshots were last read
    error TEXT,
    updated REAL
);
"""


# --- pure logic ---------------------------------------------------------------------------


def backup_health(
    last_snapshot_time: float | None, last_run_ok: bool | None, max_age: float, now: float
) -> str:
    """fresh, stale (newest good snapshot older than max_age), failing (the last run failed)
    or unknown (nothing known yet)."""
    if last_run_ok is False:
        return "failing"
    if last_snapshot_time is None:
        return "unknown"
    if now - last_snapshot_time > max_age:
        return "stale"
    return "fresh"


def last_scheduled(at: Sequence[str], now: float) -> float | None:
    """The latest daily time (HH:MM, local) at or before now."""
    if not at:
        return None
    current = datetime.fromtimestamp(now)
    best = None
    for item in at:
        hour, minute = (int(x) for x in item.split(":"))
        candidate = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if candidate > current:
            candidate -= timedelta(days=1)
        ts = candidate.timestamp()
        best = ts if best is None or ts > best else best
    return best


def backup_due(
    *,
    every: float | None,
    at: Sequence[str],
    retry_after: float,
    last_success: float | None,
    last_attempt: float | None,
    last_attempt_ok: bool | None,
    now: float,
) -> bool:
    """Is a scheduled backup due? A failed attempt never counts as done: it is retried once
    retry_after has passed."""
    if every is None and not at:
        return False
    if last_attempt_ok is False and last_attempt is not None:
        return now - last_attempt >= retry_after
    if last_success is None:
        return True
    if every is not None and now - last_success >= every:
        return True
    slot = last_scheduled(at, now)
    return slot is not None and last_success < slot


def verify_due(
    verify_every: float | None,
    last_verify: float | None,
    last_verify_ok: bool | None,
    retry_after: float,
    now: float,
) -> bool:
    if verify_every is None:
        return False
    if last_verify is None:
        return True
    if last_verify_ok is False:
        return now - last_verify >= retry_after
    return now - last_verify >= verify_every


def set_freshness(latest_by_part: dict[str, float | None]) -> float | None:
    """A set is as fresh as its stalest part; None when a part has no snapshot."""
    if not latest_by_part or any(v is None for v in latest_by_part.values()):
        return None
    return min(v for v in latest_by_part.values() if v is not None)


# --- building blocks ----------------------------------------------------------------------


@dataclass
class Part:
    name: str  # "files" or the dump's label
    paths: list[str]  # for files
    command: str | None = None
    filename: str | None = None  # path inside the snapshot for a dump (no leading /)
    secrets: dict[str, str] = field(default_factory=dict)


def site_config(loaded: Any, site: str) -> tuple[Any, Any]:
    sites = loaded.config.sites
    if site not in sites:
        raise UsageError(f"no site named {site!r} (sites: {', '.join(sites)})")
    cfg = sites[site]
    if cfg.backup is None:
        raise UsageError(f"site {site!r} has no backup set (add `backup:` to it)")
    return cfg, cfg.backup


def backup_sites(loaded: Any, site: str | None = None) -> list[str]:
    if site is not None:
        site_config(loaded, site)
        return [site]
    return [name for name, cfg in loaded.config.sites.items() if cfg.backup is not None]


def host_of(site: str, bset: Any) -> str:
    return str(bset.host or site)


def site_tags(site: str) -> list[str]:
    return [f"site:{site}"]


def remote_for(site_cfg: Any, endpoint: str) -> Any:
    from providers.remote import Remote

    if endpoint not in site_cfg.endpoints:
        raise UsageError(f"no endpoint named {endpoint!r}")
    ep = site_cfg.endpoints[endpoint]
    if ep.ssh is None:
        raise UsageError(f"endpoint {endpoint!r} has no `ssh` settings")
    return Remote(ep.ssh, ep.address, name=endpoint)


def restic_for(loaded: Any, site: str, where: str | None = None) -> Restic:
    """The set's repository, reached from `where`: "local", an endpoint name, or (None) the
    set's source."""
    cfg, bset = site_config(loaded, site)
    where = where or bset.source
    runner = LocalRunner() if where == "local" else RemoteRunner(remote_for(cfg, where))
    return Restic(
        bset.repository,
        bset.password.reveal(),
        env={k: v.reveal() for k, v in bset.env.items()},
        binary=bset.restic,
        cache_dir=bset.cache_dir,
        options=bset.options,
        runner=runner,
        timeout=bset.timeout,
    )


def dump_parts(bset: Any) -> list[Part]:
    parts = []
    for db in bset.databases:
        name = db.dump_name or f"{db.label}.sql"
        secrets: dict[str, str] = {}
        if db.type == "postgres":
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
            command = shlex.join(argv)
            if db.password is not None:
                secrets["PGPASSWORD"] = db.password.reveal()
        elif db.type in ("mysql", "mariadb"):
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
            command = shlex.join(argv)
            if db.password is not None:
                secrets["MYSQL_PWD"] = db.password.reveal()
        else:  # sqlite: an online, consistent dump (one read transaction)
            probe = shlex.join(
                [db.sqlite3, "-bail", "-readonly", db.path, "SELECT count(*) FROM sqlite_master"]
            )
            dump = shlex.join([db.sqlite3, "-bail", "-readonly", *db.extra_args, db.path, ".dump"])
            command = f"{probe} >/dev/null && {dump}"
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


def parts_of(bset: Any) -> list[Part]:
    parts = [Part(name=FILES_PART, paths=list(bset.paths))] if bset.paths else []
    return parts + dump_parts(bset)


def lock_path(loaded: Any, repository: str) -> Path:
    digest = hashlib.sha256(repository.encode()).hexdigest()[:16]
    return loaded.state_path.parent / "locks" / f"restic-{digest}.lock"


@contextmanager
def repository_lock(loaded: Any, repository: str, wait: float = 0.0) -> Iterator[None]:
    """One failover process at a time per repository (an flock beside the state file)."""
    path = lock_path(loaded, repository)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise BackupError(
                        f"another backup job (pid {holder}) is using the repository "
                        f"{redact_repository(repository)}",
                        hint="wait for it to finish; runs of one repository never overlap",
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def with_unlock(restic: Restic, bset: Any, action: Callable[[], Any]) -> Any:
    """Run action; when the repository is locked, remove stale locks and try once more."""
    try:
        return action()
    except ResticError as exc:
        if exc.kind != "locked":
            raise
        log.warning("repository %s is locked: removing stale locks", restic.where)
        remove_stale_locks(restic, bset)
        return action()


def remove_stale_locks(restic: Restic, bset: Any, now: float | None = None) -> None:
    restic.unlock()  # restic's rule: dead process on this host, or 30 minutes unrefreshed
    if bset.stale_lock_age is None:
        return
    now = now or time.time()
    locks = restic.locks()
    if locks and all(
        lk.get("ts") is not None and now - lk["ts"] > bset.stale_lock_age for lk in locks
    ):
        log.warning(
            "removing %d lock(s) older than %ss from %s",
            len(locks),
            int(bset.stale_lock_age),
            restic.where,
        )
        restic.unlock(remove_all=True)


# --- the source: where before/after commands run -------------------------------------------


def run_at_source(
    loaded: Any, site: str, command: str, timeout: float, source: str | None = None
) -> None:
    cfg, bset = site_config(loaded, site)
    source = source or bset.source
    if source == "local":
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command], capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise BackupError(f"command timed out after {timeout:g}s: {command}") from None
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-2:]
            raise BackupError(
                f"command failed (exit {proc.returncode}): {command}: {' / '.join(tail)}"
            )
        return
    remote = remote_for(cfg, source)
    try:
        remote.run(["/bin/sh", "-c", command], timeout=timeout)
    except RemoteError as exc:
        raise BackupError(f"command on {source} failed: {command}: {exc}") from None


# --- store --------------------------------------------------------------------------------


def ensure_schema(store: Any) -> None:
    store.ensure_schema(SCHEMA)


def load_state(store: Any, site: str) -> dict[str, Any]:
    row = store.conn.execute("SELECT * FROM backup_state WHERE site=?", (site,)).fetchone()
    return dict(row) if row else {"site": site, "health": "unknown"}


def save_state(store: Any, site: str, **values: Any) -> None:
    values["updated"] = time.time()
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    updates = ", ".join(f"{k}=excluded.{k}" for k in values)
    with store.transaction() as c:
        c.execute(
            f"INSERT INTO backup_state(site, {cols}) VALUES (?, {marks}) "
            f"ON CONFLICT(site) DO UPDATE SET {updates}",
            (site, *values.values()),
        )


def start_run(store: Any, site: str, kind: str, started: float) -> int:
    with store.transaction() as c:
        cur = c.execute(
            "INSERT INTO backup_runs(site, kind, started) VALUES (?,?,?)", (site, kind, started)
        )
    return int(cur.lastrowid or 0)


def finish_run(
    store: Any,
    run_id: int,
    ok: bool,
    *,
    snapshots: dict[str, str] | None = None,
    warning: str | None = None,
    error: str | None = None,
    detail: Any = None,
) -> None:
    with store.transaction() as c:
        c.execute(
            "UPDATE backup_runs SET finished=?, ok=?, snapshots=?, warning=?, error=?, "
            "detail=? WHERE id=?",
            (
                time.time(),
                int(ok),
                json.dumps(snapshots or {}),
                warning,
                error,
                json.dumps(detail, default=str) if detail is not None else None,
                run_id,
            ),
        )


def runs(
    store: Any, site: str | None = None, kind: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    query = "SELECT * FROM backup_runs WHERE 1=1"
    args: list[Any] = []
    if site:
        query += " AND site=?"
        args.append(site)
    if kind:
        query += " AND kind=?"
        args.append(kind)
    rows = store.conn.execute(
        query + " ORDER BY started DESC, id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        for key in ("snapshots", "detail"):
            if item.get(key):
                item[key] = json.loads(item[key])
        out.append(item)
    return out


# --- running a backup ---------------------------------------------------------------------


@dataclass
class BackupRunResult:
    site: str
    ok: bool
    started: float
    finished: float
    parts: dict[str, BackupSummary] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    forgotten: int = 0
    run_tag: str = ""
    interrupted: bool = False  # stopped by SIGTERM / Ctrl-C: do no more work

    @property
    def id(self) -> str:
        """The run's main snapshot (files, else the first dump): restoring it by id restores
        every part of the same run."""
        for summary in self.parts.values():
            if summary.snapshot_id:
                return summary.snapshot_id
        raise BackupError(f"the backup of {self.site} made no snapshot")

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def time(self) -> float:
        return self.started

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "ok": self.ok,
            "run_tag": self.run_tag,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "warnings": self.warnings,
            "forgotten": self.forgotten,
            "parts": {k: v.to_json() for k, v in self.parts.items()},
        }


def run_backup(
    loaded: Any,
    store: Any | None,
    site: str,
    *,
    source: str | None = None,
    progress: Callable[[str], None] | None = None,
    on_status: Callable[[str, dict[str, Any]], None] | None = None,
    lock_wait: float = 0.0,
    check: bool = True,
    init: bool = True,
) -> BackupRunResult:
    """Back up one site's set now: before commands, files, dumps, after commands, retention.

    source: back up from this endpoint (or "local") instead of the set's `source`.
    progress: human-readable lines; on_status: restic's raw status messages per part.
    The run is recorded in the store (when given) whatever happens. With check (the
    default) a failed run raises BackupError; without, the result says ok=False.
    """
    _cfg, bset = site_config(loaded, site)
    started = time.time()
    result = BackupRunResult(
        site=site,
        ok=False,
        started=started,
        finished=started,
        run_tag=f"run:{int(started)}-{os.urandom(3).hex()}",
    )
    run_id = None
    if store is not None:
        ensure_schema(store)
        run_id = start_run(store, site, "backup", started)
    try:
        with repository_lock(loaded, bset.repository, wait=lock_wait):
            _run_locked(loaded, site, bset, result, source, progress, on_status, init)
        result.ok = True
    except FailoverError as exc:
        result.error = str(exc)
        result.interrupted = getattr(exc, "kind", None) == "interrupted"
        log.error("backup failed: %s", exc, extra={"site": site})
    except OSError as exc:
        result.error = f"{exc.__class__.__name__}: {exc.strerror or exc}"
        log.error("backup failed: %s", result.error, extra={"site": site})
    result.finished = time.time()
    if store is not None and run_id is not None:
        snaps = {k: v.snapshot_id or "" for k, v in result.parts.items()}
        finish_run(
            store,
            run_id,
            result.ok,
            snapshots=snaps,
            warning="; ".join(result.warnings)[:2000] or None,
            error=result.error,
            detail=result.to_json(),
        )
        state = load_state(store, site)
        values: dict[str, Any] = {
            "last_attempt": started,
            "last_attempt_ok": int(result.ok),
            "error": result.error,
        }
        if result.ok:
            values["last_success"] = started
            values["newest_snapshot"] = started  # every part has a snapshot of this run
            values["repo_read"] = time.time()
            ids = json.loads(state.get("snapshot_ids") or "{}")
            ids.update(snaps)
            values["snapshot_ids"] = json.dumps(ids)
        save_state(store, site, **values)
    if check and not result.ok:
        raise BackupError(f"backup of {site} failed: {result.error}")
    return result


def _run_locked(
    loaded: Any,
    site: str,
    bset: Any,
    result: BackupRunResult,
    source: str | None,
    progress: Callable[[str], None] | None,
    on_status: Callable[[str, dict[str, Any]], None] | None,
    init: bool,
) -> None:
    restic = restic_for(loaded, site, source)
    say = progress or (lambda _msg: None)
    if init and restic.init(exist_ok=True):
        log.info("created the repository %s", restic.where, extra={"site": site})
    for command in bset.before:
        run_at_source(loaded, site, command, bset.timeout, source)
    try:
        for part in parts_of(bset):
            tags = [*site_tags(site), f"part:{part.name}", result.run_tag, *bset.tags]
            say(f"backing up {part.name} of {site} from {source or bset.source}")
            last = [0.0]

            def cb(msg: dict[str, Any], _name: str = part.name, last: list[float] = last) -> None:
                if on_status is not None:
                    on_status(_name, msg)
                if progress is not None and time.monotonic() - last[0] >= 5:
                    last[0] = time.monotonic()
                    progress(
                        f"{_name}: {float(msg.get('percent_done') or 0) * 100:.0f}% "
                        f"({msg.get('bytes_done', 0)} of {msg.get('total_bytes', 0)} bytes)"
                    )

            if part.command is None:
                summary = with_unlock(
                    restic,
                    bset,
                    partial(
                        restic.backup,
                        part.paths,
                        exclude=bset.exclude,
                        tags=tags,
                        host=host_of(site, bset),
                        progress=cb,
                    ),
                )
            else:
                summary = with_unlock(
                    restic,
                    bset,
                    partial(
                        restic.backup,
                        stdin_command=part.command,
                        stdin_filename=part.filename,
                        stdin_secrets=part.secrets,
                        tags=tags,
                        host=host_of(site, bset),
                        progress=cb,
                    ),
                )
            result.parts[part.name] = summary
            say(f"snapshot {summary.snapshot_id} of {part.name}")
            if summary.partial:
                msg = f"{part.name}: some files could not be read: " + " / ".join(
                    summary.warnings[:5]
                )
                result.warnings.append(msg[:1000])
                log.warning("%s", msg, extra={"site": site})
            log.info(
                "snapshot %s of %s: %d files, %d bytes added",
                summary.snapshot_id,
                part.name,
                summary.total_files_processed,
                summary.data_added,
                extra={"site": site},
            )
    finally:
        for command in bset.after:
            try:
                run_at_source(loaded, site, command, bset.timeout, source)
            except BackupError as exc:
                result.warnings.append(f"after command: {exc}")
                log.error("after command failed: %s", exc, extra={"site": site})
    if bset.retention is not None:
        # Grouped by host and paths: the files part and each dump (its own path) are kept
        # by the policy separately; tags cannot group (each run has its own run: tag).
        forgot = with_unlock(
            restic,
            bset,
            lambda: restic.forget(
                bset.retention,
                prune=True,
                tags=site_tags(site),
                host=host_of(site, bset),
                group_by="host,paths",
            ),
        )
        result.forgotten = len(forgot.remove)


# --- listing and freshness ----------------------------------------------------------------


def list_snapshots(loaded: Any, site: str) -> list[Snapshot]:
    _cfg, bset = site_config(loaded, site)
    restic = restic_for(loaded, site)
    return restic.snapshots(tags=site_tags(site), host=host_of(site, bset))


def latest_by_part(
    loaded: Any, site: str, snapshots: Sequence[Snapshot]
) -> dict[str, Snapshot | None]:
    _cfg, bset = site_config(loaded, site)
    out: dict[str, Snapshot | None] = {p.name: None for p in parts_of(bset)}
    for snap in snapshots:
        for tag in snap.tags:
            if tag.startswith("part:") and tag[5:] in out:
                current = out[tag[5:]]
                if current is None or snap.time > current.time:
                    out[tag[5:]] = snap
    return out


def newest_snapshot(loaded: Any, site: str, where: str = "local") -> Snapshot | None:
    """The main snapshot of the newest complete run (every part present), read from `where`
    (default: this machine, which must reach the repository). Its `time` is the run's oldest
    part; restoring its id restores every part of that run. None when there is none."""
    _cfg, bset = site_config(loaded, site)
    restic = restic_for(loaded, site, where)
    snaps = restic.snapshots(tags=site_tags(site), host=host_of(site, bset))
    names = [p.name for p in parts_of(bset)]
    by_run: dict[str, dict[str, Snapshot]] = {}
    for snap in snaps:
        run = next((t for t in snap.tags if t.startswith("run:")), None)
        part = next((t[5:] for t in snap.tags if t.startswith("part:")), None)
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


def refresh_freshness(loaded: Any, site: str, store: Any) -> float | None:
    """Read the repository's snapshots; store and return the set's freshness time."""
    ensure_schema(store)
    latest = latest_by_part(loaded, site, list_snapshots(loaded, site))
    newest = set_freshness({k: (v.time if v else None) for k, v in latest.items()})
    save_state(
        store,
        site,
        newest_snapshot=newest,
        repo_read=time.time(),
        snapshot_ids=json.dumps({k: v.id for k, v in latest.items() if v}),
    )
    return newest


# --- verification -------------------------------------------------------------------------


@dataclass
class VerifyResult:
    site: str
    ok: bool
    check_ok: bool | None = None
    check_errors: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hash_stream(restic: Restic, snapshot: str, path: str) -> tuple[str, int]:
    class Hasher:
        def __init__(self) -> None:
            self.h = hashlib.sha256()
            self.n = 0

        def write(self, data: bytes) -> int:
            self.h.update(data)
            self.n += len(data)
            return len(data)

    sink = Hasher()
    restic.dump(snapshot, path, sink)  # type: ignore[arg-type]
    return sink.h.hexdigest(), sink.n


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def verify_backup(
    loaded: Any,
    site: str,
    store: Any | None = None,
    *,
    sample: int | None = None,
    read_data_subset: str | None = None,
    seed: int | None = None,
) -> VerifyResult:
    """`restic check` (with the configured data subset), then a real restore of a sample of
    files into a temporary directory, each compared with the snapshot's content as `restic
    dump` streams it (sha256 and size: byte for byte). Dumps are always in the sample."""
    cfg, bset = site_config(loaded, site)
    result = VerifyResult(site=site, ok=False, started=time.time())
    run_id = None
    if store is not None:
        ensure_schema(store)
        run_id = start_run(store, site, "verify", result.started)
    try:
        with repository_lock(loaded, bset.repository):
            restic = restic_for(loaded, site)
            subset = read_data_subset or bset.check_read_data_subset
            check = with_unlock(restic, bset, lambda: restic.check(subset))
            result.check_ok = check.ok
            result.check_errors = check.errors[:20]
            latest = latest_by_part(
                loaded, site, restic.snapshots(tags=site_tags(site), host=host_of(site, bset))
            )
            missing = [k for k, v in latest.items() if v is None]
            if missing:
                raise BackupError(f"no snapshot yet of {', '.join(missing)}: run a backup first")
            _test_restore(
                loaded,
                site,
                cfg,
                bset,
                restic,
                latest,
                sample or bset.verify_sample,
                result,
                random.Random(seed),
            )
        result.ok = bool(result.check_ok) and all(f["ok"] for f in result.files)
        if not result.ok and result.error is None:
            bad = [f["path"] for f in result.files if not f["ok"]]
            result.error = (
                "restic check found errors: " + " / ".join(result.check_errors[:3])
                if not result.check_ok
                else f"{len(bad)} restored file(s) differ from the snapshot: " + ", ".join(bad[:5])
            )
    except FailoverError as exc:
        result.error = str(exc)
    except OSError as exc:
        result.error = f"{exc.__class__.__name__}: {exc.strerror or exc}"
    result.finished = time.time()
    if not result.ok:
        log.error("verification failed: %s", result.error, extra={"site": site})
    if store is not None and run_id is not None:
        finish_run(store, run_id, result.ok, error=result.error, detail=result.to_json())
        save_state(store, site, last_verify=result.started, last_verify_ok=int(result.ok))
    return result


_GLOB = set("*?[]\\")


def _test_restore(
    loaded: Any,
    site: str,
    cfg: Any,
    bset: Any,
    restic: Restic,
    latest: dict[str, Snapshot | None],
    sample: int,
    result: VerifyResult,
    rng: random.Random,
) -> None:
    candidates: list[tuple[Snapshot, str, int]] = []
    dumps: list[tuple[Snapshot, str, int]] = []
    for part, snap in latest.items():
        assert snap is not None
        for node in restic.ls(snap.id):
            if node.type != "file" or _GLOB & set(node.path):
                continue
            item = (snap, node.path, int(node.size or 0))
            (candidates if part == FILES_PART else dumps).append(item)
    rng.shuffle(candidates)
    chosen = dumps + candidates[: max(0, sample - len(dumps))]
    by_snap: dict[str, list[tuple[Snapshot, str, int]]] = {}
    for item in chosen:
        by_snap.setdefault(item[0].id, []).append(item)
    remote = None if bset.source == "local" else remote_for(cfg, bset.source)
    if remote is None:
        tmp = tempfile.mkdtemp(prefix="failover-verify-")
    else:
        tmp = remote.run(["mktemp", "-d", "/tmp/failover-verify-XXXXXX"]).text.strip()
    try:
        for snap_id, items in by_snap.items():
            restic.restore(snap_id, tmp, include=[p for _, p, _ in items])
        hashes: dict[str, tuple[str, int]] = {}
        if remote is not None and chosen:
            script = (
                'cd "$1" && shift && for f in "$@"; do '
                'printf "%s %s\\n" "$(sha256sum < "$f" | cut -d" " -f1)" '
                '"$(wc -c < "$f")"; done'
            )
            out = remote.run(
                ["/bin/sh", "-c", script, "sh", tmp, *[p.lstrip("/") for _, p, _ in chosen]],
                check=False,
            ).text
            for (_, path, _), line in zip(chosen, out.splitlines(), strict=False):
                digest, _, size = line.partition(" ")
                if len(digest) == 64 and size.strip().isdigit():
                    hashes[path] = (digest, int(size))
        for snap, path, size in chosen:
            entry: dict[str, Any] = {"path": path, "snapshot": snap.short_id, "size": size}
            try:
                if remote is None:
                    got = _hash_file(Path(tmp) / path.lstrip("/"))
                else:
                    if path not in hashes:
                        raise BackupError("not restored")
                    got = hashes[path]
                want = _hash_stream(restic, snap.id, path)
                entry["ok"] = got == want and got[1] == size
                if not entry["ok"]:
                    entry["detail"] = (
                        f"restored {got[1]} bytes sha256 {got[0][:12]}, snapshot "
                        f"has {want[1]} bytes sha256 {want[0][:12]}"
                    )
            except (OSError, FailoverError) as exc:
                entry["ok"] = False
                entry["detail"] = str(exc)[:300]
            result.files.append(entry)
    finally:
        if remote is None:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.startswith("/tmp/failover-verify-"):
            with suppress(FailoverError):
                remote.run(["rm", "-rf", "--", tmp], check=False)


# --- restoring ----------------------------------------------------------------------------


@dataclass
class RestoreResult:
    site: str
    target: str
    where: str
    snapshots: list[str]
    duration: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _restore(
    loaded: Any,
    site: str,
    where: str,
    target: str,
    snapshot: str,
    include: Sequence[str] | None,
    progress: Callable[[str], None] | None,
) -> RestoreResult:
    _cfg, bset = site_config(loaded, site)
    restic = restic_for(loaded, site, where)
    started = time.monotonic()
    restored: list[str] = []
    if snapshot == "latest":
        # restic picks each part's newest snapshot itself: no listing beforehand.
        for part in parts_of(bset):
            if progress is not None:
                progress(f"restoring the newest snapshot of {part.name} to {where}:{target}")
            try:
                with_unlock(
                    restic,
                    bset,
                    partial(
                        restic.restore,
                        "latest",
                        target,
                        include=include,
                        tags=[*site_tags(site), f"part:{part.name}"],
                        host=host_of(site, bset),
                    ),
                )
            except ResticError as exc:
                if "no snapshot found" in str(exc).lower():
                    raise BackupError(
                        f"site {site!r} has no snapshot of {part.name} to restore in {restic.where}"
                    ) from None
                raise
            restored.append(f"latest:{part.name}")
    else:
        every = restic.snapshots(tags=site_tags(site))
        found = [s for s in every if s.id.startswith(snapshot)]
        if not found:
            raise BackupError(f"no snapshot {snapshot!r} of site {site!r} in {restic.where}")
        run_tag = next((t for t in found[0].tags if t.startswith("run:")), None)
        # A run's parts (files and dumps) are restored together.
        chosen = [s for s in every if run_tag in s.tags] if run_tag else found[:1]
        for snap in chosen:
            if progress is not None:
                progress(
                    f"restoring snapshot {snap.short_id} ({', '.join(snap.paths)}) to "
                    f"{where}:{target}"
                )
            with_unlock(restic, bset, partial(restic.restore, snap.id, target, include=include))
            restored.append(snap.short_id)
    return RestoreResult(
        site=site,
        target=target,
        where=where,
        snapshots=restored,
        duration=time.monotonic() - started,
    )


def restore_to_path(
    loaded: Any,
    site: str,
    target: str | os.PathLike[str],
    *,
    snapshot: str = "latest",
    include: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RestoreResult:
    """Restore onto this machine under `target` (a path /src/x lands at target/src/x).
    snapshot "latest" restores the newest snapshot of every part (files and each dump,
    dumps under target/failover-dumps/)."""
    Path(target).mkdir(parents=True, exist_ok=True)
    return _restore(loaded, site, "local", str(target), snapshot, include, progress)


def restore_to_endpoint(
    loaded: Any,
    site: str,
    endpoint: str,
    snapshot: str = "latest",
    *,
    target: str = "/",
    include: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RestoreResult:
    """Restore onto a server over SSH: restic runs there, with the repository secrets passed
    through the SSH channel. target "/" puts every file back at its original path; dumps land
    in /failover-dumps/ (load them with psql / mysql / sqlite3 afterwards)."""
    cfg, _bset = site_config(loaded, site)
    remote_for(cfg, endpoint)  # validates the endpoint and its ssh settings
    return _restore(loaded, site, endpoint, target, snapshot, include, progress)


# --- the agent's hook ---------------------------------------------------------------------


@dataclass(frozen=True)
class BackupEvent:
    site: str
    old: str
    new: str
    ts: float
    message: str
    kind: str = "backup"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def current_health(bset: Any, state: dict[str, Any], now: float) -> str:
    ok: bool | None = None
    if state.get("last_attempt_ok") is not None:
        ok = bool(state["last_attempt_ok"])
    if ok is not False and state.get("last_verify_ok") == 0:
        ok = False
    return backup_health(state.get("newest_snapshot"), ok, bset.max_age, now)


def due_work(loaded: Any, store: Any, site: str, now: float) -> list[str]:
    """What is due for one site now: "backup", "verify", "read" (the repository's snapshots)."""
    _cfg, bset = site_config(loaded, site)
    state = load_state(store, site)
    out = []
    if backup_due(
        every=bset.every,
        at=bset.at,
        retry_after=bset.retry_after,
        last_success=state.get("last_success"),
        last_attempt=state.get("last_attempt"),
        last_attempt_ok=_opt_bool(state.get("last_attempt_ok")),
        now=now,
    ):
        out.append("backup")
    if state.get("last_attempt_ok") != 0 and verify_due(
        bset.verify_every,
        state.get("last_verify"),
        _opt_bool(state.get("last_verify_ok")),
        bset.retry_after,
        now,
    ):
        out.append("verify")
    read_every = min(bset.max_age / 4, 3600.0)
    if state.get("repo_read") is None or now - state["repo_read"] >= read_every:
        out.append("read")
    return out


def do_work(loaded: Any, store: Any, site: str, work: Sequence[str]) -> None:
    """Run the due work of one site; failures are recorded, never raised."""
    ensure_schema(store)
    try:
        if "backup" in work:
            run_backup(loaded, store, site, check=False)
        if "verify" in work and load_state(store, site).get("last_attempt_ok") != 0:
            verify_backup(loaded, site, store)
        if "read" in work or "backup" in work:
            refresh_freshness(loaded, site, store)
    except FailoverError as exc:
        log.error("backup check failed: %s", exc, extra={"site": site})
        save_state(store, site, repo_read=time.time(), error=str(exc)[:1000])


def health_events(loaded: Any, store: Any, now: float) -> list[BackupEvent]:
    """Health changes since the last call (stored), one event each."""
    events = []
    for site in backup_sites(loaded):
        _cfg, bset = site_config(loaded, site)
        state = load_state(store, site)
        new = current_health(bset, state, now)
        old = state.get("health") or "unknown"
        if new != old:
            save_state(store, site, health=new)
            events.append(
                BackupEvent(
                    site=site,
                    old=old,
                    new=new,
                    ts=now,
                    message=_health_message(site, bset, state, new, now),
                )
            )
    return events


def backup_tick(
    loaded: Any,
    store: Any,
    now: float | None = None,
    notify: Callable[[BackupEvent], Any] | None = None,
) -> list[BackupEvent]:
    """Run what is due (backups by schedule, retries after failures, verifications, reading
    the repository now and then to learn the newest snapshot), then return (and notify) the
    changes of each set's health. Synchronous: `backup_hook` is the agent's non-blocking
    variant."""
    now = time.time() if now is None else now
    ensure_schema(store)
    for site in backup_sites(loaded):
        work = due_work(loaded, store, site, now)
        if work:
            do_work(loaded, store, site, work)
    events = health_events(loaded, store, now)
    for event in events:
        if notify is not None:
            try:
                notify(event)
            except Exception as exc:  # a notifier must never stop the agent
                log.error("notification failed: %s", exc, extra={"site": event.site})
    return events


def backup_hook(ctx: Any) -> None:
    """The agent's stage (failover.agent.HookContext): due work goes through ctx.spawn (a
    worker thread with its own store in the daemon), health changes to ctx.notifier."""
    from failover.notify import Event

    loaded, store = ctx.loaded, ctx.store
    ensure_schema(store)
    now = time.time()
    for site in backup_sites(loaded):
        work = due_work(loaded, store, site, now)
        if work:
            ctx.spawn(f"backup:{site}", partial(_spawned, loaded, site, work))
    for event in health_events(loaded, store, now):
        level = {"fresh": "success", "stale": "warning", "failing": "failure"}.get(
            event.new, "info"
        )
        ctx.notifier.send(
            Event(
                kind="backup",
                title=f"backup of {event.site}: {event.new}",
                body=event.message,
                site=event.site,
                level=level,
            )
        )


def _spawned(loaded: Any, site: str, work: Sequence[str], store: Any) -> None:
    do_work(loaded, store, site, work)


def status_section(loaded: Any, store: Any, site: str) -> dict[str, Any]:
    """For `failover status`: the site's backup health, and a warning when it is stale or
    failing. Reads the store only."""
    cfg = loaded.config.sites.get(site)
    if cfg is None or cfg.backup is None:
        return {}
    if store is None or not store.has_table("backup_state"):
        return {"backup": {"health": "unknown"}}
    now = time.time()
    row = load_state(store, site)
    health = current_health(cfg.backup, row, now)
    newest = row.get("newest_snapshot")
    out: dict[str, Any] = {
        "backup": {
            "health": health,
            "repository": redact_repository(cfg.backup.repository),
            "newest_snapshot": newest,
            "age": None if newest is None else now - newest,
            "max_age": cfg.backup.max_age,
            "last_attempt": row.get("last_attempt"),
            "last_attempt_ok": _opt_bool(row.get("last_attempt_ok")),
            "last_verify": row.get("last_verify"),
            "last_verify_ok": _opt_bool(row.get("last_verify_ok")),
            "error": row.get("error"),
        }
    }
    if health in ("stale", "failing"):
        out["warnings"] = [_health_message(site, cfg.backup, row, health, now)]
    return out


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _health_message(site: str, bset: Any, state: dict[str, Any], health: str, now: float) -> str:
    from failover.config.types import format_duration

    newest = state.get("newest_snapshot")
    age = f"{format_duration(round(now - newest))} old" if newest else "no snapshot"
    if health == "failing":
        return f"backup of {site} is failing: {state.get('error') or 'verification failed'}"
    if health == "stale":
        return (
            f"backup of {site} is stale: newest snapshot {age}, more than max_age "
            f"{format_duration(bset.max_age)}"
        )
    if health == "fresh":
        return f"backup of {site} is fresh (newest snapshot {age})"
    return f"backup of {site}: health unknown"


def backup_status(loaded: Any, store: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Per site with a backup set: health, newest snapshot, last run and verification, for
    `failover status` (reads the store only; no secrets)."""
    now = time.time() if now is None else now
    ensure_schema(store)
    out = []
    for site in backup_sites(loaded):
        _cfg, bset = site_config(loaded, site)
        state = load_state(store, site)
        newest = state.get("newest_snapshot")
        out.append(
            {
                "site": site,
                "health": current_health(bset, state, now),
                "repository": redact_repository(bset.repository),
                "source": bset.source,
                "newest_snapshot": newest,
                "age": None if newest is None else now - newest,
                "max_age": bset.max_age,
                "last_attempt": state.get("last_attempt"),
                "last_attempt_ok": None
                if state.get("last_attempt_ok") is None
                else bool(state["last_attempt_ok"]),
                "last_verify": state.get("last_verify"),
                "last_verify_ok": None
                if state.get("last_verify_ok") is None
                else bool(state["last_verify_ok"]),
                "error": state.get("error"),
            }
        )
    return out


__all__ = [
    "BackupEvent",
    "BackupRunResult",
    "RestoreResult",
    "VerifyResult",
    "backup_due",
    "backup_health",
    "backup_hook",
    "backup_status",
    "backup_tick",
    "list_snapshots",
    "newest_snapshot",
    "restore_to_endpoint",
    "restore_to_path",
    "run_backup",
    "status_section",
    "verify_backup",
]
