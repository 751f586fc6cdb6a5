"""Restoring a site's backup: onto this machine under a path, or onto a server over SSH.

Used by `failover backup restore`, the failover runbook's restore step and the warm
standby's refresh. "latest" restores the newest snapshot of every part (restic picks it);
a snapshot id restores every part of that snapshot's run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.backup.parts import host_of, part_tag, parts_of, same_run, site_tags
from failover.backup.restic_parse import ResticError
from failover.backup.run import remote_for, restic_for, site_config, with_unlock
from failover.errors import BackupError

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig

ProgressFn = Callable[[str], None]


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
    loaded: LoadedConfig,
    site: str,
    where: str,
    target: str,
    snapshot: str,
    include: Sequence[str] | None,
    progress: ProgressFn | None,
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
) -> RestoreResult:
    """Restore onto a server over SSH: restic runs there, with the repository secrets passed
    through the SSH channel. target "/" puts every file back at its original path; dumps land
    in /failover-dumps/ (load them with psql / mysql / sqlite3 afterwards)."""
    cfg, _bset = site_config(loaded, site)
    remote_for(cfg, endpoint)  # validates the endpoint and its ssh settings
    return _restore(loaded, site, endpoint, target, snapshot, include, progress)
