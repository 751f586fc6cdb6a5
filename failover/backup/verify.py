"""Proving a backup restores: `restic check`, then a real restore of a sample of files.

The sample (every dump, plus random files of the files part) is restored into a temporary
directory where restic runs (this machine or the set's source over SSH), and each restored
file is compared with the snapshot's content as `restic dump` streams it here (sha256 and
size: byte for byte).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.backup.journal import ensure_schema, finish_run, save_state, start_run
from failover.backup.parts import FILES_PART, host_of, site_tags
from failover.backup.restic import Restic
from failover.backup.restic_parse import Node, Snapshot
from failover.backup.run import (
    latest_by_part,
    remote_for,
    repository_lock,
    restic_for,
    site_config,
    with_unlock,
)
from failover.errors import BackupError, FailoverError
from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.config.backup import BackupSet
    from failover.config.load import LoadedConfig
    from failover.config.models import Site
    from failover.store import Store
    from providers.remote import Remote

log = get_logger("backup")

Sampled = tuple[Snapshot, str, int]  # snapshot, path in it, size
Digest = tuple[str, int]  # sha256, size

_GLOB = set("*?[]\\")
# Prints "sha256 size" for each file argument, relative to the directory $1.
_REMOTE_HASH = (
    'cd "$1" && shift && for f in "$@"; do '
    'printf "%s %s\\n" "$(sha256sum < "$f" | cut -d" " -f1)" '
    '"$(wc -c < "$f")"; done'
)


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


def verify_backup(
    loaded: LoadedConfig,
    site: str,
    store: Store | None = None,
    *,
    sample: int | None = None,
    read_data_subset: str | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> VerifyResult:
    """`restic check` (with the configured data subset), then a real restore of a sample of
    files into a temporary directory, each compared with the snapshot's content as `restic
    dump` streams it (sha256 and size: byte for byte). Dumps are always in the sample."""
    cfg, bset = site_config(loaded, site)
    say = progress or (lambda _line: None)
    result = VerifyResult(site=site, ok=False, started=time.time())
    run_id = None
    if store is not None:
        ensure_schema(store)
        run_id = start_run(store, site, "verify", result.started)
    try:
        with repository_lock(loaded, bset.repository):
            restic = restic_for(loaded, site)
            subset = read_data_subset or bset.check_read_data_subset
            say(
                "restic check: the repository's structure"
                + (f" and {subset} of its data" if subset else "")
            )
            check = with_unlock(restic, bset, lambda: restic.check(subset))
            result.check_ok = check.ok
            result.check_errors = check.errors[:20]
            say("restic check: " + ("clean" if check.ok else f"{len(check.errors)} error(s)"))
            latest = latest_by_part(
                loaded, site, restic.snapshots(tags=site_tags(site), host=host_of(site, bset))
            )
            missing = [k for k, v in latest.items() if v is None]
            if missing:
                raise BackupError(f"no snapshot yet of {', '.join(missing)}: run a backup first")
            _test_restore(
                cfg,
                bset,
                restic,
                {k: v for k, v in latest.items() if v is not None},
                sample or bset.verify_sample,
                result,
                random.Random(seed),
                say,
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


def choose_sample(
    nodes: Mapping[str, tuple[Snapshot, Sequence[Node]]], sample: int, rng: random.Random
) -> list[Sampled]:
    """Every file of the dumps, and up to `sample` in all with random files of the files
    part. nodes: per part, its snapshot and what `restic ls` lists in it. Paths with glob
    characters are left out (restore's --include would read them as patterns)."""
    candidates: list[Sampled] = []
    dumps: list[Sampled] = []
    for part, (snap, listed) in nodes.items():
        for node in listed:
            if node.type != "file" or _GLOB & set(node.path):
                continue
            item = (snap, node.path, int(node.size or 0))
            (candidates if part == FILES_PART else dumps).append(item)
    rng.shuffle(candidates)
    return dumps + candidates[: max(0, sample - len(dumps))]


def _test_restore(
    cfg: Site,
    bset: BackupSet,
    restic: Restic,
    latest: dict[str, Snapshot],
    sample: int,
    result: VerifyResult,
    rng: random.Random,
    say: Callable[[str], None],
) -> None:
    say(
        "listing the newest snapshot of "
        + ", ".join(f"{k} ({v.short_id})" for k, v in latest.items())
    )
    nodes = {part: (snap, restic.ls(snap.id)) for part, snap in latest.items()}
    chosen = choose_sample(nodes, sample, rng)
    where = "here" if bset.source == "local" else f"on {bset.source}"
    say(f"restoring a sample of {len(chosen)} file(s) {where} into a temporary directory")
    by_snap: dict[str, list[Sampled]] = {}
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
        hashes = _remote_hashes(remote, tmp, chosen) if remote is not None else {}
        say(f"comparing {len(chosen)} restored file(s) with the snapshot, byte for byte")
        for snap, path, size in chosen:
            result.files.append(_compare(restic, remote, tmp, hashes, snap, path, size))
    finally:
        if remote is None:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.startswith("/tmp/failover-verify-"):
            with suppress(FailoverError):
                remote.run(["rm", "-rf", "--", tmp], check=False)


def _remote_hashes(remote: Remote, tmp: str, chosen: Sequence[Sampled]) -> dict[str, Digest]:
    """sha256 and size of the restored files, computed on the server (one command)."""
    if not chosen:
        return {}
    out = remote.run(
        ["/bin/sh", "-c", _REMOTE_HASH, "sh", tmp, *[p.lstrip("/") for _, p, _ in chosen]],
        check=False,
    ).text
    hashes: dict[str, Digest] = {}
    for (_, path, _), line in zip(chosen, out.splitlines(), strict=False):
        digest, _, size = line.partition(" ")
        if len(digest) == 64 and size.strip().isdigit():
            hashes[path] = (digest, int(size))
    return hashes


def _compare(
    restic: Restic,
    remote: Remote | None,
    tmp: str,
    hashes: dict[str, Digest],
    snap: Snapshot,
    path: str,
    size: int,
) -> dict[str, Any]:
    """One restored file against the snapshot's content: an entry of VerifyResult.files."""
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
    return entry


def _hash_stream(restic: Restic, snapshot: str, path: str) -> Digest:
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


def _hash_file(path: Path) -> Digest:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


# --- is a server current? (a warm standby's drill) ------------------------------------------

# Prints "sha256 size mtime" (or "missing") for each file argument, relative to the directory $1.
_REMOTE_STAT = (
    'cd "$1" && shift && for f in "$@"; do if [ -f "$f" ]; then '
    'printf "%s %s %s\\n" "$(sha256sum < "$f" | cut -d" " -f1)" "$(wc -c < "$f")" '
    '"$(stat -c %Y "$f")"; else echo missing; fi; done'
)
COMPARE_MAX_FILE = 64 << 20  # files larger than this are left out of the sample


@dataclass
class Comparison:
    """A sample of the newest snapshot's files against the same paths on a server."""

    site: str
    endpoint: str
    snapshot: str  # the newest complete run's main snapshot id
    snapshot_time: float  # the run's oldest part: the set's freshness
    files: list[dict[str, Any]] = field(default_factory=list)  # path, verdict, detail

    @property
    def current(self) -> bool:
        """Every sampled file is there with the snapshot's content, or was changed on the
        server after the snapshot was taken (kept current by other means)."""
        return all(f["verdict"] in ("same", "newer") for f in self.files)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for f in self.files:
            counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
        told = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
        text = f"{len(self.files)} file(s) of snapshot {self.snapshot[:8]} compared: {told or '-'}"
        bad = [f for f in self.files if f["verdict"] not in ("same", "newer")]
        if bad:
            text += "; " + "; ".join(f"{f['path']}: {f['detail']}" for f in bad[:5])
        return text


def compare_with_endpoint(
    loaded: LoadedConfig,
    site: str,
    endpoint: str,
    *,
    root: str = "/",
    sample: int = 20,
    seed: int | None = None,
) -> Comparison:
    """Whether `endpoint` holds the newest snapshot: a random sample of the files part of
    the newest complete run is restored here (one restic restore) and hashed, and the same
    paths under `root` on the server are hashed there (one SSH command). A file is `same`,
    `newer` (different, changed on the server after the snapshot), `older` (different and
    not changed since: the server missed a backup) or `missing`. Dumps are not compared
    (they are loaded into a database, not kept as files)."""
    from failover.backup.parts import newest_complete_run, part_tag, parts_of

    cfg, bset = site_config(loaded, site)
    remote = remote_for(cfg, endpoint)
    restic = restic_for(loaded, site, "local")
    snaps = restic.snapshots(tags=site_tags(site), host=host_of(site, bset))
    newest = newest_complete_run([p.name for p in parts_of(bset)], snaps)
    if newest is None:
        raise BackupError(f"site {site!r} has no complete snapshot to compare with")
    run_tag = next((t for t in newest.tags if t.startswith("run:")), None)
    files_snap = next(
        (
            s
            for s in snaps
            if part_tag(FILES_PART) in s.tags and (run_tag is None or run_tag in s.tags)
        ),
        None,
    )
    result = Comparison(site, endpoint, newest.id, newest.time)
    if files_snap is None:
        return result
    nodes = [n for n in restic.ls(files_snap.id) if (n.size or 0) <= COMPARE_MAX_FILE]
    chosen = choose_sample({FILES_PART: (files_snap, nodes)}, sample, random.Random(seed))
    if not chosen:
        return result
    paths = [p for _, p, _ in chosen]
    tmp = tempfile.mkdtemp(prefix="failover-compare-")
    try:
        restic.restore(files_snap.id, tmp, include=paths)
        wanted = {p: _hash_file(Path(tmp) / p.lstrip("/")) for p in paths}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = remote.run(
        ["/bin/sh", "-c", _REMOTE_STAT, "sh", root, *[p.lstrip("/") for p in paths]],
        timeout=bset.timeout,
    ).text.splitlines()
    for index, path in enumerate(paths):
        line = out[index] if index < len(out) else "missing"
        result.files.append(_verdict(path, wanted[path], line, files_snap.time))
    return result


def _verdict(path: str, want: Digest, line: str, snapshot_time: float) -> dict[str, Any]:
    fields = line.split()
    if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
        return {"path": path, "verdict": "missing", "detail": "not on the server"}
    digest, size, mtime = fields[0], int(fields[1]), int(fields[2])
    if (digest, size) == want:
        return {"path": path, "verdict": "same", "detail": "same content"}
    if mtime > snapshot_time:
        return {"path": path, "verdict": "newer", "detail": "changed on the server since"}
    return {
        "path": path,
        "verdict": "older",
        "detail": f"differs from the snapshot ({size} bytes against {want[1]}) and is older",
    }
