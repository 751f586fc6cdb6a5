"""restic's words, read and written: PURE (no subprocess, no store).

What restic prints is parsed here (`--json` where the installed restic prints JSON: backup,
snapshots, forget, ls; restic 0.14 prints text for init, restore and check, parsed as text),
and what restic is given is built here (arguments, the dump pipeline's shell script).
`failover.backup.restic` runs restic with them.

Exit codes are classified into `ResticError.kind`: 3 (snapshot made, some files unreadable)
is a warning carried by `BackupSummary.partial`; 10/11/12 (newer restic) and the equivalent
messages of older releases become no_repository / locked / wrong_password.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from failover.errors import BackupError
from failover.scrub import redact_url, scrub

if TYPE_CHECKING:
    from failover.config.backup import Retention

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_VERSION = re.compile(r"restic\s+(\d+)\.(\d+)\.(\d+)")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_LOCK_ID = re.compile(r"[0-9a-f]{64}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DUMP_FAILED_STATUS = 97
DUMP_MARKER = "failover: dump command failed with exit status"
RETENTION_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


# --- results and errors -------------------------------------------------------------------


class ResticError(BackupError):
    """restic failed. `kind`: fatal, no_repository, locked, wrong_password, unreachable,
    timeout, interrupted, not_installed, dump_failed, check_failed."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "fatal",
        returncode: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.returncode = returncode


HINTS = {
    "wrong_password": "check the backup set's password",
    "no_repository": "create it with `restic init`, or check `repository`",
    "locked": "another restic holds a lock; a stale one is removed by the next run",
    "unreachable": "the repository's server does not answer",
    "not_installed": "install restic where it runs (apt install restic)",
}

_BY_CODE = {
    10: "no_repository",
    11: "locked",
    12: "wrong_password",
    130: "interrupted",
    127: "not_installed",
    DUMP_FAILED_STATUS: "dump_failed",
}
# Older releases say with words what newer ones say with exit codes; first match wins.
_BY_MESSAGE = (
    ("wrong_password", ("wrong password", "no key found")),
    (
        "unreachable",
        (
            "connection refused",
            "no such host",
            "i/o timeout",
            "dial tcp",
            "connection reset",
            "network is unreachable",
        ),
    ),
    (
        "no_repository",
        (
            "is there a repository at the following location",
            "unable to open config file",
            "repository does not exist",
        ),
    ),
    ("locked", ("repository is already locked", "unable to create lock")),
    ("interrupted", ("signal interrupt received",)),
)


def classify(returncode: int, stderr: str) -> str | None:
    """The kind of a restic failure from its exit status and messages; None when it worked
    (0) or made a snapshot with unreadable files (3)."""
    if returncode in (0, 3):
        return None
    if returncode in _BY_CODE:
        return _BY_CODE[returncode]
    if DUMP_MARKER in stderr:
        return "dump_failed"
    low = stderr.lower()
    for kind, phrases in _BY_MESSAGE:
        if any(phrase in low for phrase in phrases):
            return kind
    return "fatal"


def restic_error(
    command: str, returncode: int, stderr: str, *, where: str, description: str
) -> ResticError:
    """The error for a failed restic command: its kind, the useful end of its stderr and a
    hint. where: the repository (redacted); description: where restic ran."""
    kind = classify(returncode, stderr) or "fatal"
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if kind == "dump_failed":
        detail = " / ".join(lines[-4:])
        return ResticError(
            f"dump failed, no snapshot made: {detail}"[:600], kind=kind, returncode=returncode
        )
    if kind == "not_installed":
        return ResticError(
            f"restic is not installed on {description}",
            kind=kind,
            returncode=returncode,
            hint=HINTS[kind],
        )
    useful = [ln for ln in lines if not ln.startswith(("[", "using temporary cache"))]
    detail = " / ".join(useful[-3:]) or f"exit status {returncode}"
    return ResticError(
        f"restic {command} on {where} failed ({kind}): {detail}"[:600],
        kind=kind,
        returncode=returncode,
        hint=HINTS.get(kind),
    )


@dataclass(frozen=True)
class ResticVersion:
    major: int
    minor: int
    patch: int

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_version(text: str) -> ResticVersion:
    m = _VERSION.search(text)
    if not m:
        raise ResticError(f"cannot read restic's version from {text.strip()[:80]!r}")
    return ResticVersion(int(m.group(1)), int(m.group(2)), int(m.group(3)))


@dataclass
class ResticResult:
    returncode: int
    stdout: str
    stderr: str
    duration: float
    messages: list[dict[str, Any]] = field(default_factory=list)  # parsed JSON lines


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: float  # unix time
    paths: tuple[str, ...]
    hostname: str
    tags: tuple[str, ...]
    tree: str | None = None
    parent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "time": self.time,
            "time_iso": datetime.fromtimestamp(self.time).astimezone().isoformat(),
            "paths": list(self.paths),
            "hostname": self.hostname,
            "tags": list(self.tags),
        }


@dataclass
class BackupSummary:
    snapshot_id: str | None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    data_added: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    duration: float = 0.0
    partial: bool = False  # exit 3: snapshot made, some files unreadable
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Node:
    path: str
    type: str
    size: int | None
    mtime: str | None


@dataclass
class ForgetResult:
    keep: list[str]
    remove: list[str]
    pruned: bool


@dataclass
class CheckResult:
    ok: bool
    errors: list[str]
    output: str


# --- parsing ------------------------------------------------------------------------------


def parse_time(text: str) -> float:
    """restic's RFC 3339 times (nanoseconds, Z or offset) -> unix time."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"not a restic time: {text!r}")
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + zone).timestamp()


def parse_snapshots(text: str) -> list[Snapshot]:
    data = json.loads(text or "[]") or []
    out = []
    for item in data:
        out.append(
            Snapshot(
                id=item["id"],
                short_id=item.get("short_id") or item["id"][:8],
                time=parse_time(item["time"]),
                paths=tuple(item.get("paths") or ()),
                hostname=item.get("hostname", ""),
                tags=tuple(item.get("tags") or ()),
                tree=item.get("tree"),
                parent=item.get("parent"),
            )
        )
    out.sort(key=lambda s: s.time)
    return out


def snapshots_line(stdout: str) -> str:
    """The JSON array in the output of `snapshots --json` ("[]" when there is none)."""
    return next((ln for ln in stdout.splitlines() if ln.startswith("[")), "[]")


def json_line(line: str) -> Any:
    """A line of stdout parsed as a JSON object, or None when it is not one."""
    if not line.startswith("{"):
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


def is_status(msg: Any) -> bool:
    """A progress message of `backup --json` / `restore --json`."""
    return isinstance(msg, dict) and msg.get("message_type") == "status"


def parse_backup_output(lines: Iterable[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The summary message of `backup --json` and the text lines that were not JSON."""
    summary = None
    other = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        if isinstance(msg, dict) and msg.get("message_type") == "summary":
            summary = msg
    return summary, other


def backup_summary(
    summary: Mapping[str, Any], returncode: int, duration: float, stderr: str
) -> BackupSummary:
    """A BackupSummary from restic's summary message; exit 3 makes it partial, with the
    unreadable files from stderr as warnings."""
    partial = returncode == 3
    warnings = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[")]
    return BackupSummary(
        snapshot_id=summary.get("snapshot_id"),
        files_new=summary.get("files_new", 0),
        files_changed=summary.get("files_changed", 0),
        files_unmodified=summary.get("files_unmodified", 0),
        data_added=summary.get("data_added", 0),
        total_files_processed=summary.get("total_files_processed", 0),
        total_bytes_processed=summary.get("total_bytes_processed", 0),
        duration=float(summary.get("total_duration", duration)),
        partial=partial,
        warnings=warnings if partial else [],
    )


def parse_forget(text: str) -> tuple[list[str], list[str]]:
    """Kept and removed snapshot ids from `forget --json` (prune's text may follow)."""
    keep: list[str] = []
    remove: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        try:
            groups = json.loads(line)
        except ValueError:
            continue
        for group in groups or []:
            keep += [s["id"] for s in group.get("keep") or []]
            remove += [s["id"] for s in group.get("remove") or []]
        break
    return keep, remove


def parse_check(returncode: int, output: str) -> CheckResult:
    text = ANSI.sub("", output)
    errors = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip()
        and (
            ln.strip().lower().startswith(("error", "fatal", "pack "))
            or "invalid" in ln.lower()
            or "mismatch" in ln.lower()
        )
    ]
    ok = returncode == 0 and "no errors were found" in text
    return CheckResult(ok=ok, errors=errors, output=text)


def parse_ls(text: str) -> list[Node]:
    nodes = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if item.get("struct_type") == "node" or (
            "path" in item and "type" in item and "paths" not in item
        ):
            nodes.append(Node(item["path"], item["type"], item.get("size"), item.get("mtime")))
    return nodes


def lock_ids(text: str) -> list[str]:
    """The lock ids printed by `list locks`."""
    return [ln.strip() for ln in text.splitlines() if _LOCK_ID.fullmatch(ln.strip())]


# --- building arguments and text ----------------------------------------------------------


def retention_args(retention: Retention | Mapping[str, Any] | None) -> list[str]:
    """--keep-* flags from a Retention model or a mapping (last, hourly, daily, ...)."""
    if retention is None:
        return []
    items: Iterable[tuple[str, Any]] = (
        retention.items()
        if isinstance(retention, Mapping)
        else ((name, getattr(retention, name)) for name in RETENTION_RULES)
    )
    args = []
    for name, value in items:
        if value is None:
            continue
        if name not in RETENTION_RULES:
            raise ValueError(f"unknown retention rule {name!r}")
        if int(value) < 1:
            raise ValueError(f"retention {name} must be at least 1")
        args += [f"--keep-{name}", str(int(value))]
    if not args:
        raise ValueError("retention keeps nothing")
    return args


def _selection(tags: Sequence[str], host: str | None) -> list[str]:
    args = []
    if tags:
        args += ["--tag", ",".join(tags)]
    if host:
        args += ["--host", host]
    return args


def backup_args(
    paths: Sequence[str],
    *,
    stdin_filename: str | None,
    exclude: Sequence[str] = (),
    tags: Sequence[str] = (),
    host: str | None = None,
) -> list[str]:
    """`backup --json` of paths, or (stdin_filename not None) of its standard input stored
    as that file. Each tag is its own --tag (a snapshot has them all)."""
    args = ["backup", "--json"]
    for pattern in exclude:
        args += ["--exclude", pattern]
    for tag in tags:
        args += ["--tag", tag]
    if host:
        args += ["--host", host]
    if stdin_filename is not None:
        return [*args, "--stdin", "--stdin-filename", stdin_filename]
    if not paths:
        raise ValueError("nothing to back up")
    return [*args, "--", *paths]


def snapshots_args(
    *,
    tags: Sequence[str] = (),
    host: str | None = None,
    paths: Sequence[str] = (),
    latest: int | None = None,
) -> list[str]:
    """`snapshots --json`; tags: all must be present."""
    args = ["snapshots", "--json", *_selection(tags, host)]
    for path in paths:
        args += ["--path", path]
    if latest:
        args += ["--latest", str(latest)]
    return args


def forget_args(
    retention: Retention | Mapping[str, Any] | None,
    *,
    prune: bool = True,
    tags: Sequence[str] = (),
    host: str | None = None,
    group_by: str = "host,paths",
) -> list[str]:
    args = ["forget", "--json", *retention_args(retention), "--group-by", group_by]
    args += _selection(tags, host)
    if prune:
        args.append("--prune")
    return args


def restore_args(
    snapshot: str,
    target: str,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    verify: bool = False,
    tags: Sequence[str] = (),
    host: str | None = None,
) -> list[str]:
    args = ["restore", snapshot, "--target", target, *_selection(tags, host)]
    for pattern in include or ():
        args += ["--include", pattern]
    for pattern in exclude or ():
        args += ["--exclude", pattern]
    if verify:
        args.append("--verify")
    return args


def redact_repository(repository: str) -> str:
    """The repository location, safe to show: a URL's whole userinfo is masked (up to the
    last `@` before the host: `rest:http://***@host/`), and token-like query values."""
    return redact_url(repository)


def redact_output(text: str, secrets: Iterable[str]) -> str:
    """restic's output, safe to show and store: colours stripped, secret values (4
    characters or more) and credentials in URLs masked."""
    return scrub(ANSI.sub("", text), secrets)


# The dump pipeline: the dump's output goes straight into `restic backup --stdin`. When the
# dump fails, restic is interrupted (SIGINT to the process group) before it can see the end of
# its input, so no snapshot is made; the dump side keeps the pipe open until then.
DUMP_JOB = """\
trap 'dfail=1' INT
{ %(unset_restic)s
  (
%(command)s
  )
  s=$?
  if [ "$s" -ne 0 ]; then
    echo "%(marker)s $s" >&2
    kill -INT 0
    exec sleep 3600
  fi
} | { %(unset_dump)s exec "$@"; } &
rp=$!
"""
DUMP_AFTER = f"""\
if [ "$dfail" = 1 ]; then trap '' TERM; kill -TERM 0 2>/dev/null; exit {DUMP_FAILED_STATUS}; fi
"""


def dump_job(command: str, restic_vars: Iterable[str], dump_vars: Iterable[str]) -> str:
    """The shell job of a dump: each side of the pipe unsets the other side's secrets."""

    def unset(names: Iterable[str]) -> str:
        names = [n for n in names if _ENV_NAME.match(n)]
        return f"unset {' '.join(names)};" if names else ""

    return DUMP_JOB % {
        "command": command,
        "marker": DUMP_MARKER,
        "unset_restic": unset(restic_vars),
        "unset_dump": unset(dump_vars),
    }


# --- making restored paths equal to the snapshot ------------------------------------------

RESTORE_DELETE = (0, 17, 0)  # restic's `restore --delete` appeared in 0.17.0


def _pattern_matches(pattern: str, path: str) -> bool:
    """Whether a restic exclude pattern may match `path` (or a directory above it). On the
    generous side: a path it may match is never deleted."""
    pattern = pattern.rstrip("/")
    parts = path.strip("/").split("/")
    prefixes = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("/"):
        glob = pattern.replace("**", "*")
        return any(fnmatch.fnmatchcase(p, glob) for p in prefixes)
    glob = pattern.replace("**/", "").replace("**", "*")
    tails = ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(t, glob) for t in tails)


def extra_paths(
    in_snapshot: Iterable[str],
    present: Iterable[str],
    roots: Sequence[str],
    excludes: Sequence[str],
) -> list[str]:
    """What a restore of `roots` must remove to leave them equal to the snapshot: the
    paths `present` on the server (as absolute paths in the snapshot's namespace) under a
    root that the snapshot does not hold, topmost only (a directory goes with what it
    holds), never one an exclude pattern may match (excluded data was never backed up),
    never a root itself. Sorted."""
    have = {p.rstrip("/") or "/" for p in in_snapshot}
    clean_roots = [r.rstrip("/") for r in roots if r.rstrip("/")]
    out: list[str] = []
    for path in sorted({p.rstrip("/") for p in present}):
        if not any(path.startswith(r + "/") for r in clean_roots):
            continue  # outside what was backed up: not ours to touch
        if path in have or any(path.startswith(o + "/") for o in out):
            continue
        if any(_pattern_matches(x, path) for x in excludes):
            continue
        out.append(path)
    return out


def restore_delete_args(snapshot: str, path: str, target: str) -> list[str]:
    """restic >= 0.17: restore `path` of the snapshot onto `target`/`path`, deleting there
    what the snapshot does not hold (`snapshot:subfolder` keeps the deletion inside it)."""
    where = target.rstrip("/") + "/" + path.strip("/")
    return ["restore", f"{snapshot}:{path}", "--target", where, "--delete"]
