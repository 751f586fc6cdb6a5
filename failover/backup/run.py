"""Running a backup of a site: before commands, files, dumps, after commands, retention.

A run backs up the set's paths as one snapshot and each database dump as one more (streamed
into `restic backup --stdin`, no temporary file), all tagged `site:NAME`, `part:PART` and
the run's `run:ID` with the set's host name (failover.backup.parts), then forgets and prunes
by the retention policy. The set is only as fresh as its stalest part. restic runs where the
data is: on this machine (`source: local`) or on an endpoint over SSH, with the repository
secrets sent through the SSH channel.

Two runs on one repository never overlap (an flock beside the state file); stale restic
locks are removed with `restic unlock` (restic's own staleness rule) when a command finds
the repository locked, or, with `stale_lock_age`, every lock older than that.

Also here: reaching a site's repository (`restic_for`, `remote_for`) and reading its
snapshots (`list_snapshots`, `newest_snapshot`, `refresh_freshness`), used by verify,
restore and the hook.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from failover.backup.journal import ensure_schema, finish_run, load_state, save_state, start_run
from failover.backup.parts import (
    Part,
    host_of,
    latest_per_part,
    newest_complete_run,
    part_tag,
    parts_of,
    site_tags,
)
from failover.backup.restic import LocalRunner, RemoteRunner, Restic
from failover.backup.restic_parse import (
    BackupSummary,
    ResticError,
    Snapshot,
    redact_repository,
)
from failover.backup.schedule import set_freshness
from failover.errors import BackupError, FailoverError, RemoteError, UsageError
from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.config.backup import BackupSet
    from failover.config.load import LoadedConfig
    from failover.config.models import Site
    from failover.store import Store
    from failover.watch.heartbeat import Signal
    from providers.remote import Remote

log = get_logger("backup")

T = TypeVar("T")
ProgressFn = Callable[[str], None]
StatusFn = Callable[[str, dict[str, Any]], None]


# --- a site's set, its repository and its source ------------------------------------------


def site_config(loaded: LoadedConfig, site: str) -> tuple[Site, BackupSet]:
    sites = loaded.config.sites
    if site not in sites:
        raise UsageError(f"no site named {site!r} (sites: {', '.join(sites)})")
    cfg = sites[site]
    if cfg.backup is None:
        raise UsageError(f"site {site!r} has no backup set (add `backup:` to it)")
    return cfg, cfg.backup


def backup_sites(loaded: LoadedConfig, site: str | None = None) -> list[str]:
    if site is not None:
        site_config(loaded, site)
        return [site]
    return [name for name, cfg in loaded.config.sites.items() if cfg.backup is not None]


def remote_for(site_cfg: Site, endpoint: str) -> Remote:
    from providers.remote import Remote

    if endpoint not in site_cfg.endpoints:
        raise UsageError(f"no endpoint named {endpoint!r}")
    ep = site_cfg.endpoints[endpoint]
    if ep.ssh is None:
        raise UsageError(f"endpoint {endpoint!r} has no `ssh` settings")
    return Remote(ep.ssh, ep.address, name=endpoint)


def restic_for(
    loaded: LoadedConfig, site: str, where: str | None = None, store: Store | None = None
) -> Restic:
    """The set's repository, reached from `where`: "local", an endpoint name, or (None) the
    set's source. With `store`, the local restic's version is remembered there (per binary
    path, size and mtime) instead of asked for in every process."""
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
        versions=None if store is None else _StoredVersions(store),
    )


class _StoredVersions:
    """restic versions kept in the state's meta table (see Restic.version)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str) -> str | None:
        return self.store.get_meta("restic.version:" + key)

    def put(self, key: str, text: str) -> None:
        self.store.set_meta("restic.version:" + key, text)


def run_at_source(
    loaded: LoadedConfig, site: str, command: str, timeout: float, source: str | None = None
) -> None:
    """Run a before/after command where the data is (this machine or the source over SSH)."""
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


# --- locks --------------------------------------------------------------------------------


def lock_path(loaded: LoadedConfig, repository: str) -> Path:
    digest = hashlib.sha256(repository.encode()).hexdigest()[:16]
    return loaded.state_path.parent / "locks" / f"restic-{digest}.lock"


@contextmanager
def repository_lock(loaded: LoadedConfig, repository: str, wait: float = 0.0) -> Iterator[None]:
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


def with_unlock(restic: Restic, bset: BackupSet, action: Callable[[], T]) -> T:
    """Run action; when the repository is locked, remove stale locks and try once more."""
    try:
        return action()
    except ResticError as exc:
        if exc.kind != "locked":
            raise
        log.warning("repository %s is locked: removing stale locks", restic.where)
        remove_stale_locks(restic, bset)
        return action()


def remove_stale_locks(restic: Restic, bset: BackupSet, now: float | None = None) -> None:
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
    loaded: LoadedConfig,
    store: Store | None,
    site: str,
    *,
    source: str | None = None,
    progress: ProgressFn | None = None,
    on_status: StatusFn | None = None,
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
    _signal(loaded, bset, "start", f"backup of {site} started")
    try:
        with repository_lock(loaded, bset.repository, wait=lock_wait):
            _run_locked(loaded, store, site, bset, result, source, progress, on_status, init)
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
        _record(store, run_id, result)
    _signal(
        loaded,
        bset,
        0 if result.ok else 1,
        f"backup of {site} " + ("ok" if result.ok else f"FAILED: {result.error}"),
        ms=(result.finished - started) * 1000,
    )
    if check and not result.ok:
        raise BackupError(f"backup of {site} failed: {result.error}")
    return result


def _signal(
    loaded: LoadedConfig, bset: BackupSet, signal: Signal, message: str, ms: float | None = None
) -> None:
    """The backup set's heartbeat (if any): start, then the run's exit status."""
    if bset.heartbeat is None:
        return
    from failover.watch import heartbeat

    timeout = heartbeat.timeout_for(loaded.config, bset.heartbeat)
    heartbeat.send(bset.heartbeat, signal, message, timeout=timeout, ms=ms, what="backup")


def _record(store: Store, run_id: int, result: BackupRunResult) -> None:
    """Journal the run and what the schedule and health are computed from."""
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
    state = load_state(store, result.site)
    values: dict[str, Any] = {
        "last_attempt": result.started,
        "last_attempt_ok": int(result.ok),
        "error": result.error,
    }
    if result.ok:
        values["last_success"] = result.started
        values["newest_snapshot"] = result.started  # every part has a snapshot of this run
        values["repo_read"] = time.time()
        ids = json.loads(state.get("snapshot_ids") or "{}")
        ids.update(snaps)
        values["snapshot_ids"] = json.dumps(ids)
    save_state(store, result.site, **values)


def _run_locked(
    loaded: LoadedConfig,
    store: Store | None,
    site: str,
    bset: BackupSet,
    result: BackupRunResult,
    source: str | None,
    progress: ProgressFn | None,
    on_status: StatusFn | None,
    init: bool,
) -> None:
    restic = restic_for(loaded, site, source, store)
    say = progress or (lambda _msg: None)
    known = _repository_known(store, restic)
    if init and not known:
        _init_repository(store, restic, site)
    for command in bset.before:
        run_at_source(loaded, site, command, bset.timeout, source)
    try:
        for part in parts_of(bset):
            say(f"backing up {part.name} of {site} from {source or bset.source}")
            try:
                summary = _back_up_part(
                    restic, site, bset, part, result.run_tag, progress, on_status
                )
            except ResticError as exc:
                if not (init and known and exc.kind == "no_repository"):
                    raise
                # Known from an earlier run, gone now (deleted, or moved): as before this
                # tool remembered repositories, create it, and back up into the new one.
                log.warning("the repository %s is gone: creating it", restic.where)
                _init_repository(store, restic, site)
                known = False
                summary = _back_up_part(
                    restic, site, bset, part, result.run_tag, progress, on_status
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
        retention = bset.retention
        forgot = with_unlock(
            restic,
            bset,
            lambda: restic.forget(
                retention,
                prune=True,
                tags=site_tags(site),
                host=host_of(site, bset),
                group_by="host,paths",
            ),
        )
        result.forgotten = len(forgot.remove)


def _repository_key(restic: Restic) -> str:
    """The state's name for a repository as reached from one place: a digest, since the
    repository string may hold credentials (rest:https://user:pass@...)."""
    where = f"{restic.runner.key}\n{restic.repository}".encode()
    return "backup.repository:" + hashlib.sha256(where).hexdigest()[:32]


def _repository_known(store: Store | None, restic: Restic) -> bool:
    """Whether an earlier run saw this repository exist (then `restic init` is not run)."""
    return store is not None and store.get_meta(_repository_key(restic)) is not None


def _init_repository(store: Store | None, restic: Restic, site: str) -> None:
    if restic.init(exist_ok=True):
        log.info("created the repository %s", restic.where, extra={"site": site})
    if store is not None:
        store.set_meta(_repository_key(restic), f"{time.time():.0f}")


def _back_up_part(
    restic: Restic,
    site: str,
    bset: BackupSet,
    part: Part,
    run_tag: str,
    progress: ProgressFn | None,
    on_status: StatusFn | None,
) -> BackupSummary:
    """One snapshot of one part: its paths, or its dump command's output."""
    tags = [*site_tags(site), part_tag(part.name), run_tag, *bset.tags]
    last = [0.0]

    def cb(msg: dict[str, Any]) -> None:
        if on_status is not None:
            on_status(part.name, msg)
        if progress is not None and time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            progress(
                f"{part.name}: {float(msg.get('percent_done') or 0) * 100:.0f}% "
                f"({msg.get('bytes_done', 0)} of {msg.get('total_bytes', 0)} bytes)"
            )

    if part.command is None:
        backup = partial(
            restic.backup,
            part.paths,
            exclude=bset.exclude,
            tags=tags,
            host=host_of(site, bset),
            progress=cb,
        )
    else:
        backup = partial(
            restic.backup,
            stdin_command=part.command,
            stdin_filename=part.filename,
            stdin_secrets=part.secrets,
            tags=tags,
            host=host_of(site, bset),
            progress=cb,
        )
    try:
        return with_unlock(restic, bset, backup)
    except ResticError as exc:
        if exc.kind in ("dump_failed", "timeout"):
            _clean_up_after(restic, site)
        raise


def _clean_up_after(restic: Restic, site: str) -> None:
    """restic stopped by a signal may leave its lock behind: a SIGINT that lands while it
    is writing the lock runs its cleanup before the lock is registered. The process is gone,
    so by restic's own rule the lock is stale; remove it now rather than leave it to the
    next run."""
    try:
        restic.unlock()
    except FailoverError as exc:
        log.warning(
            "could not remove stale locks from %s: %s", restic.where, exc, extra={"site": site}
        )


# --- listing and freshness ----------------------------------------------------------------


def list_snapshots(loaded: LoadedConfig, site: str) -> list[Snapshot]:
    _cfg, bset = site_config(loaded, site)
    restic = restic_for(loaded, site)
    return restic.snapshots(tags=site_tags(site), host=host_of(site, bset))


def latest_by_part(
    loaded: LoadedConfig, site: str, snapshots: Sequence[Snapshot]
) -> dict[str, Snapshot | None]:
    _cfg, bset = site_config(loaded, site)
    return latest_per_part([p.name for p in parts_of(bset)], snapshots)


def newest_snapshot(loaded: LoadedConfig, site: str, where: str = "local") -> Snapshot | None:
    """The main snapshot of the newest complete run (every part present), read from `where`
    (default: this machine, which must reach the repository). Its `time` is the run's oldest
    part; restoring its id restores every part of that run. None when there is none."""
    _cfg, bset = site_config(loaded, site)
    restic = restic_for(loaded, site, where)
    snaps = restic.snapshots(tags=site_tags(site), host=host_of(site, bset))
    return newest_complete_run([p.name for p in parts_of(bset)], snaps)


def refresh_freshness(loaded: LoadedConfig, site: str, store: Store) -> float | None:
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
