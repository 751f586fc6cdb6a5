"""Restoring a site's backup: onto this machine under a path, or onto a server over SSH.

Used by `failover backup restore`, the failover runbook's restore step and the warm
standby's refresh. "latest" restores the newest snapshot of every part (restic picks it);
a snapshot id restores every part of that snapshot's run.

A restore onto a server makes the backed-up paths there *equal* to the snapshot: what the
snapshot does not hold is removed (files deleted on the standby during an outage must not
come back on the primary at failback). restic 0.17+ does it itself (`restore
snapshot:path --delete`, used when the set has no exclude patterns); otherwise, and on
restic 0.14, the paths the server holds under the backed-up paths are compared with
`restic ls` of the snapshot and the extra ones are removed, never one an exclude pattern
may match; the list goes to `on_remove` (the run journals it) before anything is removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.backup.parts import FILES_PART, host_of, part_tag, parts_of, same_run, site_tags
from failover.backup.restic_parse import (
    RESTORE_DELETE,
    ResticError,
    Snapshot,
    extra_paths,
    restore_delete_args,
)
from failover.backup.run import remote_for, restic_for, site_config, with_unlock
from failover.errors import BackupError

if TYPE_CHECKING:
    from failover.backup.restic import Restic
    from failover.config.backup import BackupSet
    from failover.config.load import LoadedConfig

ProgressFn = Callable[[str], None]
RemoveFn = Callable[[list[str]], None]
RM_BATCH = 200  # paths per `rm` command line


@dataclass
class RestoreResult:
    site: str
    target: str
    where: str
    snapshots: list[str]
    duration: float
    removed: list[str] | None = None  # paths removed to match the snapshot (None: not synced)
    deletion: str = ""  # how: "restic --delete", "compared with restic ls", ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _restore(
    loaded: LoadedConfig,
    site: str,
    where: str,
    target: str,
    snapshot: str,
    include: Sequence[str] | None,
    progress: ProgressFn | None,
    *,
    sync: bool = False,
    on_remove: RemoveFn | None = None,
) -> RestoreResult:
    _cfg, bset = site_config(loaded, site)
    restic = restic_for(loaded, site, where)
    started = time.monotonic()
    restored: list[str] = []
    sync = sync and include is None and bool(bset.paths)  # a partial restore removes nothing
    files: Snapshot | None = None
    synced_by_restic = False
    if snapshot == "latest":
        for part in parts_of(bset):
            if progress is not None:
                progress(f"restoring the newest snapshot of {part.name} to {where}:{target}")
            if sync and part.name == FILES_PART:
                # The exact snapshot, not "latest" twice: a backup may land in between.
                files = _newest_files(restic, site, bset)
                synced_by_restic = _restore_files(restic, bset, files, target)
                restored.append(files.short_id)
                continue
            try:
                with_unlock(
                    restic,
                    bset,
                    partial(
                        restic.restore,
                        "latest",
                        target,
                        include=include,
                        tags=[*site_tags(site), part_tag(part.name)],
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
        # A run's parts (files and dumps) are restored together.
        chosen = same_run(restic.snapshots(tags=site_tags(site)), snapshot)
        if not chosen:
            raise BackupError(f"no snapshot {snapshot!r} of site {site!r} in {restic.where}")
        for snap in chosen:
            if progress is not None:
                progress(
                    f"restoring snapshot {snap.short_id} ({', '.join(snap.paths)}) to "
                    f"{where}:{target}"
                )
            if sync and part_tag(FILES_PART) in snap.tags:
                files = snap
                synced_by_restic = _restore_files(restic, bset, snap, target)
            else:
                with_unlock(restic, bset, partial(restic.restore, snap.id, target, include=include))
            restored.append(snap.short_id)
    result = RestoreResult(site=site, target=target, where=where, snapshots=restored, duration=0.0)
    if files is not None and synced_by_restic:
        result.removed, result.deletion = [], "restic --delete"
    elif files is not None:
        result.removed = _remove_extra(restic, bset, files, target, on_remove, progress)
        result.deletion = "compared with restic ls"
    result.duration = time.monotonic() - started
    return result


def _newest_files(restic: Restic, site: str, bset: BackupSet) -> Snapshot:
    found = restic.snapshots(
        tags=[*site_tags(site), part_tag(FILES_PART)], host=host_of(site, bset), latest=1
    )
    if not found:
        raise BackupError(
            f"site {site!r} has no snapshot of {FILES_PART} to restore in {restic.where}"
        )
    return max(found, key=lambda s: s.time)


def _restore_files(restic: Restic, bset: BackupSet, snap: Snapshot, target: str) -> bool:
    """Restore the files part. With restic 0.17+ and no exclude patterns, each backed-up path
    is restored with `--delete` (True: restic made it equal to the snapshot); otherwise a
    plain restore (False: the caller removes the extra paths)."""
    try:
        use_delete = not bset.exclude and restic.version().at_least(*RESTORE_DELETE)
    except ResticError:
        use_delete = False
    if not use_delete:
        with_unlock(restic, bset, partial(restic.restore, snap.id, target))
        return False
    for path in bset.paths:
        with_unlock(restic, bset, partial(restic.run, restore_delete_args(snap.id, path, target)))
    return True


def _remove_extra(
    restic: Restic,
    bset: BackupSet,
    snap: Snapshot,
    target: str,
    on_remove: RemoveFn | None,
    progress: ProgressFn | None,
) -> list[str]:
    """Remove from the server what the backed-up paths hold beyond the snapshot (restic
    before 0.17 has no `restore --delete`). Returns the paths removed (snapshot namespace)."""
    remote = getattr(restic.runner, "remote", None)
    if remote is None:
        return []
    prefix = target.rstrip("/")
    in_snapshot = [node.path for node in restic.ls(snap.id)]
    present: list[str] = []
    for root in bset.paths:
        listed = remote.run(
            ["find", prefix + "/" + root.strip("/"), "-mindepth", "1", "-print0"], check=False
        )
        for raw in listed.stdout.split(b"\0"):
            if raw:
                path = raw.decode(errors="surrogateescape")
                present.append(path[len(prefix) :] if prefix else path)
    extra = extra_paths(in_snapshot, present, bset.paths, bset.exclude)
    if not extra:
        return []
    if on_remove is not None:
        on_remove(extra)  # journaled before anything is removed
    if progress is not None:
        progress(f"removing {len(extra)} path(s) the snapshot {snap.short_id} does not hold")
    for i in range(0, len(extra), RM_BATCH):
        batch = [prefix + p for p in extra[i : i + RM_BATCH]]
        remote.run(["rm", "-rf", "--", *batch])
    return extra


def restore_to_path(
    loaded: LoadedConfig,
    site: str,
    target: str | os.PathLike[str],
    *,
    snapshot: str = "latest",
    include: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> RestoreResult:
    """Restore onto this machine under `target` (a path /src/x lands at target/src/x).
    snapshot "latest" restores the newest snapshot of every part (files and each dump,
    dumps under target/failover-dumps/)."""
    Path(target).mkdir(parents=True, exist_ok=True)
    return _restore(loaded, site, "local", str(target), snapshot, include, progress)


def restore_to_endpoint(
    loaded: LoadedConfig,
    site: str,
    endpoint: str,
    snapshot: str = "latest",
    *,
    target: str = "/",
    include: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    on_remove: RemoveFn | None = None,
) -> RestoreResult:
    """Restore onto a server over SSH: restic runs there, with the repository secrets passed
    through the SSH channel. target "/" puts every file back at its original path; dumps land
    in /failover-dumps/ (load them with psql / mysql / sqlite3 afterwards). The backed-up
    paths end up equal to the snapshot: what it does not hold is removed (`on_remove` gets
    the list first; see the module's docstring)."""
    cfg, _bset = site_config(loaded, site)
    remote_for(cfg, endpoint)  # validates the endpoint and its ssh settings
    return _restore(
        loaded, site, endpoint, target, snapshot, include, progress, sync=True, on_remove=on_remove
    )
