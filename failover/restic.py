"""A thin, typed wrapper over the restic binary.

One `Restic` object per repository, holding its own environment: the repository location
and password always travel in restic's environment (locally) or through the SSH channel
(remotely, see providers/remote.py), never on a command line. `--json` is parsed where the
installed restic prints JSON (backup, snapshots, forget, ls); restic 0.14 prints text for
init, restore and check, which is parsed as text. The version is detected once per binary
and place, and newer flags are used only when present.

Exit codes are classified into `ResticError.kind`: 3 (snapshot made, some files unreadable)
is a warning carried by `BackupSummary.partial`; 10/11/12 (newer restic) and the equivalent
messages of older releases become no_repository / locked / wrong_password.

A running restic is interrupted with SIGINT (restic 0.14 cleans up its lock on SIGINT but
not on SIGTERM): on timeout, on KeyboardInterrupt, and when this process receives SIGTERM
(forwarded while restic runs in the main thread).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol

from failover.errors import BackupError

ProgressFn = Callable[[dict[str, Any]], None]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_VERSION = re.compile(r"restic\s+(\d+)\.(\d+)\.(\d+)")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")

STOP_GRACE = 15.0  # seconds between SIGINT and SIGKILL
DUMP_FAILED_STATUS = 97
DUMP_MARKER = "failover: dump command failed with exit status"


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


_HINTS = {
    "wrong_password": "check the backup set's password",
    "no_repository": "create it with `restic init`, or check `repository`",
    "locked": "another restic holds a lock; a stale one is removed by the next run",
    "unreachable": "the repository's server does not answer",
    "not_installed": "install restic where it runs (apt install restic)",
}


def classify(returncode: int, stderr: str) -> str | None:
    """The kind of a restic failure from its exit status and messages; None when it worked
    (0) or made a snapshot with unreadable files (3)."""
    if returncode in (0, 3):
        return None
    low = stderr.lower()
    by_code = {
        10: "no_repository",
        11: "locked",
        12: "wrong_password",
        130: "interrupted",
        127: "not_installed",
        DUMP_FAILED_STATUS: "dump_failed",
    }
    if returncode in by_code:
        return by_code[returncode]
    if DUMP_MARKER in stderr:
        return "dump_failed"
    if "wrong password" in low or "no key found" in low:
        return "wrong_password"
    if (
        "connection refused" in low
        or "no such host" in low
        or "i/o timeout" in low
        or "dial tcp" in low
        or "connection reset" in low
        or "network is unreachable" in low
    ):
        return "unreachable"
    if (
        "is there a repository at the following location" in low
        or "unable to open config file" in low
        or "repository does not exist" in low
    ):
        return "no_repository"
    if "repository is already locked" in low or "unable to create lock" in low:
        return "locked"
    if (
        "connection refused" in low
        or "no such host" in low
        or "i/o timeout" in low
        or "dial tcp" in low
        or "connection reset" in low
        or "network is unreachable" in low
    ):
        return "unreachable"
    if "signal interrupt received" in low:
        return "interrupted"
    return "fatal"


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
    text = _ANSI.sub("", output)
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


def retention_args(retention: Any) -> list[str]:
    """--keep-* flags from a Retention model or a mapping (last, hourly, daily, ...)."""
    if retention is None:
        return []
    items = (
        retention.items()
        if isinstance(retention, Mapping)
        else (
            (name, getattr(retention, name))
            for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly")
        )
    )
    args = []
    for name, value in items:
        if value is None:
            continue
        if name not in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            raise ValueError(f"unknown retention rule {name!r}")
        if int(value) < 1:
            raise ValueError(f"retention {name} must be at least 1")
        args += [f"--keep-{name}", str(int(value))]
    if not args:
        raise ValueError("retention keeps nothing")
    return args


def redact_repository(repository: str) -> str:
    """The repository location, safe to show: credentials in a URL are masked."""
    return _USERINFO.sub("***@", repository)


# --- where restic runs ----------------------------------------------------------------------


class Proc(Protocol):
    popen: subprocess.Popen[bytes]

    def stop(self) -> None: ...

    def kill(self) -> None: ...


class Runner(Protocol):
    key: str
    description: str

    def start(
        self,
        argv: Sequence[str],
        *,
        env_secrets: Mapping[str, str],
        env: Mapping[str, str],
        job: str | None = None,
        after: str = "",
    ) -> Proc: ...


class _LocalProc:
    def __init__(self, popen: subprocess.Popen[bytes], watched: bool) -> None:
        self.popen = popen
        self.watched = watched

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        if self.watched:
            _close(self.popen.stdin)
        else:
            try:
                self.popen.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class LocalRunner:
    """restic on this machine. Plain commands run restic directly; jobs (dump pipelines)
    run under /bin/sh in the same watched wrapper as on a server."""

    key = "local"
    description = "this machine"

    def start(
        self,
        argv: Sequence[str],
        *,
        env_secrets: Mapping[str, str],
        env: Mapping[str, str],
        job: str | None = None,
        after: str = "",
    ) -> Proc:
        from providers.remote import watched_script

        full = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        full.update(env)
        full.update(env_secrets)
        try:
            if job is None:
                popen = subprocess.Popen(
                    list(argv),
                    env=full,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
                return _LocalProc(popen, watched=False)
            popen = subprocess.Popen(
                ["/bin/sh", "-c", watched_script(job, after, poll=True), "failover", *argv],
                env=full,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            return _LocalProc(popen, watched=True)
        except FileNotFoundError:
            raise ResticError(
                f"{argv[0]} is not installed on this machine",
                kind="not_installed",
                hint=_HINTS["not_installed"],
            ) from None


class _RemoteProc:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen

    def stop(self) -> None:
        _close(self.popen.stdin)

    def kill(self) -> None:
        try:
            self.popen.kill()
        except ProcessLookupError:
            pass


class RemoteRunner:
    """restic on a server, over SSH (providers.remote.Remote)."""

    def __init__(self, remote: Any) -> None:
        self.remote = remote
        self.key = f"ssh:{remote.user}@{remote.host}:{remote.port}"
        self.description = remote.where

    def start(
        self,
        argv: Sequence[str],
        *,
        env_secrets: Mapping[str, str],
        env: Mapping[str, str],
        job: str | None = None,
        after: str = "",
    ) -> Proc:
        from providers.remote import PLAIN_JOB

        popen = self.remote.start(
            argv,
            env_secrets=env_secrets,
            env=env,
            job=job or PLAIN_JOB,
            after=after,
            poll=job is not None,
        )
        return _RemoteProc(popen)


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except (BrokenPipeError, OSError):
            pass


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
    def unset(names: Iterable[str]) -> str:
        names = [n for n in names if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", n)]
        return f"unset {' '.join(names)};" if names else ""

    return DUMP_JOB % {
        "command": command,
        "marker": DUMP_MARKER,
        "unset_restic": unset(restic_vars),
        "unset_dump": unset(dump_vars),
    }


# --- the wrapper ----------------------------------------------------------------------------

_VERSIONS: dict[tuple[str, str], ResticVersion] = {}
_VERSIONS_LOCK = threading.Lock()


class Restic:
    """One restic repository, reached from one place (this machine or a server over SSH)."""

    def __init__(
        self,
        repository: str,
        password: str,
        *,
        env: Mapping[str, str] | None = None,
        binary: str = "restic",
        cache_dir: str | None = None,
        options: Sequence[str] = (),
        runner: Runner | None = None,
        timeout: float | None = None,
        progress_fps: float = 1.0,
    ) -> None:
        self.repository = repository
        self._password = password
        self._env = dict(env or {})
        self.binary = binary
        self.cache_dir = cache_dir
        self.options = list(options)
        self.runner: Runner = runner or LocalRunner()
        self.timeout = timeout
        self.progress_fps = progress_fps

    def __repr__(self) -> str:
        return f"Restic({redact_repository(self.repository)} via {self.runner.description})"

    @property
    def where(self) -> str:
        return redact_repository(self.repository)

    # --- plumbing -----------------------------------------------------------------------

    def secrets(self) -> dict[str, str]:
        out = dict(self._env)
        out["RESTIC_REPOSITORY"] = self.repository
        out["RESTIC_PASSWORD"] = self._password
        return out

    def plain_env(self) -> dict[str, str]:
        env = {"RESTIC_PROGRESS_FPS": f"{self.progress_fps:g}"}
        if self.cache_dir:
            env["RESTIC_CACHE_DIR"] = self.cache_dir
        return env

    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = [self.binary]
        for option in self.options:
            argv += ["-o", option]
        return argv + list(args)

    def redact(self, text: str) -> str:
        text = _ANSI.sub("", text)
        secrets = self.secrets()
        secrets.pop("RESTIC_REPOSITORY")
        for value in secrets.values():
            if value and len(value) >= 4:
                text = text.replace(value, "***")
        return _USERINFO.sub("***@", text)

    def run(
        self,
        args: Sequence[str],
        *,
        progress: ProgressFn | None = None,
        timeout: float | None = None,
        sink: IO[bytes] | None = None,
        job: str | None = None,
        after: str = "",
        extra_secrets: Mapping[str, str] | None = None,
        check: bool = True,
        ok_codes: tuple[int, ...] = (0,),
    ) -> ResticResult:
        """Run one restic command and wait for it. JSON lines on stdout are parsed into
        `messages`; status lines go to `progress`. With `sink`, stdout is copied there."""
        argv = self._argv(args)
        secrets = self.secrets()
        if extra_secrets:
            secrets.update(extra_secrets)
        timeout = timeout if timeout is not None else self.timeout
        started = time.monotonic()
        proc = self.runner.start(
            argv, env_secrets=secrets, env=self.plain_env(), job=job, after=after
        )
        popen = proc.popen
        stderr_chunks: list[bytes] = []

        def read_stderr() -> None:
            assert popen.stderr is not None
            stream: Any = popen.stderr
            for chunk in iter(lambda: stream.read1(65536), b""):
                stderr_chunks.append(chunk)
                if len(stderr_chunks) > 2000:
                    del stderr_chunks[:1000]

        err_thread = threading.Thread(target=read_stderr, daemon=True)
        err_thread.start()
        state = {"timed_out": False, "terminated": False}
        done = threading.Event()

        def on_timeout() -> None:
            if done.wait(timeout or 0):
                return
            state["timed_out"] = True
            proc.stop()
            if not done.wait(STOP_GRACE):
                proc.kill()

        if timeout:
            threading.Thread(target=on_timeout, daemon=True).start()

        previous = None
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:

            def on_sigterm(signum: int, frame: Any) -> None:
                state["terminated"] = True
                proc.stop()

            try:
                previous = signal.signal(signal.SIGTERM, on_sigterm)
            except ValueError:
                in_main = False

        out_lines: list[str] = []
        messages: list[dict[str, Any]] = []
        try:
            assert popen.stdout is not None
            if sink is not None:
                out_stream: Any = popen.stdout
                for chunk in iter(lambda: out_stream.read1(1 << 20), b""):
                    sink.write(chunk)
            else:
                for raw in popen.stdout:
                    line = raw.decode(errors="replace")
                    if line.startswith("{"):
                        try:
                            msg = json.loads(line)
                        except ValueError:
                            out_lines.append(line)
                            continue
                        if isinstance(msg, dict) and msg.get("message_type") == "status":
                            if progress is not None:
                                progress(msg)
                            continue
                        messages.append(msg)
                    out_lines.append(line)
            returncode = popen.wait()
        except KeyboardInterrupt:
            proc.stop()
            try:
                popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        except BaseException:
            proc.stop()
            try:
                popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            done.set()
            if in_main and previous is not None:
                signal.signal(signal.SIGTERM, previous)
            _close(popen.stdin)
            err_thread.join(5)
        stderr = self.redact(b"".join(stderr_chunks).decode(errors="replace"))
        result = ResticResult(
            returncode, "".join(out_lines), stderr, time.monotonic() - started, messages
        )
        if returncode == 255 and isinstance(self.runner, RemoteRunner):
            raise self.runner.remote.connection_error(stderr)
        if state["timed_out"]:
            raise ResticError(
                f"restic {args[0]} on {self.where} timed out after {timeout:g}s "
                "and was interrupted",
                kind="timeout",
                returncode=returncode,
            )
        if state["terminated"]:
            raise ResticError(
                f"restic {args[0]} interrupted: this process received SIGTERM",
                kind="interrupted",
                returncode=returncode,
            )
        if check and returncode not in ok_codes:
            raise self.error(args[0], returncode, stderr)
        return result

    def error(self, command: str, returncode: int, stderr: str) -> ResticError:
        kind = classify(returncode, stderr) or "fatal"
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        if kind == "dump_failed":
            detail = " / ".join(lines[-4:])
            return ResticError(
                f"dump failed, no snapshot made: {detail}"[:600], kind=kind, returncode=returncode
            )
        if kind == "not_installed":
            return ResticError(
                f"restic is not installed on {self.runner.description}",
                kind=kind,
                returncode=returncode,
                hint=_HINTS[kind],
            )
        useful = [ln for ln in lines if not ln.startswith(("[", "using temporary cache"))]
        detail = " / ".join(useful[-3:]) or f"exit status {returncode}"
        return ResticError(
            f"restic {command} on {self.where} failed ({kind}): {detail}"[:600],
            kind=kind,
            returncode=returncode,
            hint=_HINTS.get(kind),
        )

    # --- commands -----------------------------------------------------------------------

    def _retry_lock(self) -> list[str]:
        """restic 0.16+ can wait for a live lock to go instead of failing at once."""
        try:
            return ["--retry-lock", "2m"] if self.version().at_least(0, 16) else []
        except ResticError:
            return []

    def version(self) -> ResticVersion:
        """restic's version where it runs, asked once per binary and place."""
        key = (self.runner.key, self.binary)
        with _VERSIONS_LOCK:
            if key in _VERSIONS:
                return _VERSIONS[key]
        if isinstance(self.runner, RemoteRunner):
            res = self.runner.remote.run([self.binary, "version"], timeout=60, check=False)
            code, out, err = res.returncode, res.stdout, res.stderr
        else:
            try:
                done = subprocess.run(
                    [self.binary, "version"], capture_output=True, timeout=60, check=False
                )
            except FileNotFoundError:
                raise ResticError(
                    f"{self.binary} is not installed on this machine",
                    kind="not_installed",
                    hint=_HINTS["not_installed"],
                ) from None
            code, out, err = done.returncode, done.stdout, done.stderr
        if code != 0:
            raise self.error("version", code, err.decode(errors="replace"))
        version = parse_version(out.decode(errors="replace"))
        with _VERSIONS_LOCK:
            _VERSIONS[key] = version
        return version

    def init(self, exist_ok: bool = True) -> bool:
        """Create the repository; False when it already exists (and exist_ok)."""
        result = self.run(["init"], check=False)
        if result.returncode == 0:
            return True
        if exist_ok and (
            "already exists" in result.stderr or "already initialized" in result.stderr
        ):
            return False
        raise self.error("init", result.returncode, result.stderr)

    def backup(
        self,
        paths: Sequence[str] = (),
        *,
        stdin_command: str | None = None,
        stdin_filename: str | None = None,
        stdin_secrets: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
        tags: Sequence[str] = (),
        host: str | None = None,
        progress: ProgressFn | None = None,
        timeout: float | None = None,
    ) -> BackupSummary:
        """Back up paths, or the standard output of `stdin_command` (a shell command run
        where restic runs, with `stdin_secrets` in its environment only) as one file."""
        args = ["backup", "--json"]
        for pattern in exclude:
            args += ["--exclude", pattern]
        for tag in tags:
            args += ["--tag", tag]
        if host:
            args += ["--host", host]
        job = after = None
        if stdin_command is not None:
            args += ["--stdin", "--stdin-filename", stdin_filename or "stdin"]
            job = dump_job(stdin_command, self.secrets(), stdin_secrets or {})
            after = DUMP_AFTER
        else:
            if not paths:
                raise ValueError("nothing to back up")
            args += ["--", *paths]
        result = self.run(
            args,
            progress=progress,
            timeout=timeout,
            job=job,
            after=after or "",
            extra_secrets=stdin_secrets,
            ok_codes=(0, 3),
        )
        summary, _ = parse_backup_output(result.stdout.splitlines())
        if summary is None:
            raise ResticError(
                f"restic backup on {self.where} printed no summary", returncode=result.returncode
            )
        warnings = [
            ln.strip() for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("[")
        ]
        if stdin_command is not None and (
            result.returncode == 3 or not summary.get("total_bytes_processed")
        ):
            # An empty or unreadable dump must never stand as a good snapshot.
            if summary.get("snapshot_id"):
                self.run(["forget", str(summary["snapshot_id"])], check=False)
            raise ResticError(
                f"dump {stdin_filename} produced no output; its snapshot was removed",
                kind="dump_failed",
                returncode=result.returncode,
            )
        return BackupSummary(
            snapshot_id=summary.get("snapshot_id"),
            files_new=summary.get("files_new", 0),
            files_changed=summary.get("files_changed", 0),
            files_unmodified=summary.get("files_unmodified", 0),
            data_added=summary.get("data_added", 0),
            total_files_processed=summary.get("total_files_processed", 0),
            total_bytes_processed=summary.get("total_bytes_processed", 0),
            duration=float(summary.get("total_duration", result.duration)),
            partial=result.returncode == 3,
            warnings=warnings if result.returncode == 3 else [],
        )

    def snapshots(
        self,
        *,
        tags: Sequence[str] = (),
        host: str | None = None,
        paths: Sequence[str] = (),
        latest: int | None = None,
        timeout: float | None = None,
    ) -> list[Snapshot]:
        """Snapshots, oldest first. tags: all must be present."""
        args = ["snapshots", "--json"]
        if tags:
            args += ["--tag", ",".join(tags)]
        if host:
            args += ["--host", host]
        for path in paths:
            args += ["--path", path]
        if latest:
            args += ["--latest", str(latest)]
        result = self.run(args, timeout=timeout)
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("[")), "[]")
        return parse_snapshots(line)

    def forget(
        self,
        retention: Any,
        *,
        prune: bool = True,
        tags: Sequence[str] = (),
        host: str | None = None,
        group_by: str = "host,paths",
        timeout: float | None = None,
    ) -> ForgetResult:
        args = ["forget", "--json", *retention_args(retention), "--group-by", group_by]
        if tags:
            args += ["--tag", ",".join(tags)]
        if host:
            args += ["--host", host]
        if prune:
            args.append("--prune")
        args += self._retry_lock()
        result = self.run(args, timeout=timeout)
        keep, remove = parse_forget(result.stdout)
        return ForgetResult(keep, remove, prune)

    def forget_ids(self, ids: Sequence[str], prune: bool = False) -> None:
        self.run(["forget", *ids, *(["--prune"] if prune else [])])

    def check(
        self, read_data_subset: str | None = None, timeout: float | None = None
    ) -> CheckResult:
        args = ["check", *self._retry_lock()]
        if read_data_subset:
            args += ["--read-data-subset", read_data_subset]
        result = self.run(args, timeout=timeout, check=False)
        outcome = parse_check(result.returncode, result.stdout + "\n" + result.stderr)
        if result.returncode != 0:
            kind = classify(result.returncode, result.stderr)
            if kind != "fatal" and "repository contains errors" not in result.stderr:
                raise self.error("check", result.returncode, result.stderr)
            if not outcome.errors:
                outcome.errors = [self.error("check", result.returncode, result.stderr).args[0]]
        return outcome

    def restore(
        self,
        snapshot: str,
        target: str,
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        verify: bool = False,
        tags: Sequence[str] = (),
        host: str | None = None,
        progress: ProgressFn | None = None,
        timeout: float | None = None,
    ) -> ResticResult:
        """Restore a snapshot (or "latest", chosen among those with all `tags` and `host`)
        under target: /src/x lands at target/src/x."""
        args = ["restore", snapshot, "--target", target]
        if tags:
            args += ["--tag", ",".join(tags)]
        if host:
            args += ["--host", host]
        for pattern in include or ():
            args += ["--include", pattern]
        for pattern in exclude or ():
            args += ["--exclude", pattern]
        if verify:
            args.append("--verify")
        return self.run(args, progress=progress, timeout=timeout)

    def dump(self, snapshot: str, path: str, out: IO[bytes], timeout: float | None = None) -> None:
        """Write one file of a snapshot to `out` (a directory comes out as a tar)."""
        self.run(["dump", snapshot, path], sink=out, timeout=timeout)

    def ls(self, snapshot: str = "latest", timeout: float | None = None) -> list[Node]:
        result = self.run(["ls", "--json", snapshot], timeout=timeout)
        return parse_ls(result.stdout)

    def unlock(self, remove_all: bool = False) -> None:
        """Remove stale locks (restic's rule: its process is gone on this host, or it was not
        refreshed for 30 minutes); with remove_all, every lock, live ones included."""
        self.run(["unlock", *(["--remove-all"] if remove_all else [])])

    def locks(self) -> list[dict[str, Any]]:
        """The repository's locks with their time, host and pid."""
        ids = [
            ln.strip()
            for ln in self.run(["list", "locks", "--no-lock"]).stdout.splitlines()
            if re.fullmatch(r"[0-9a-f]{64}", ln.strip())
        ]
        out = []
        for lock_id in ids:
            result = self.run(["cat", "lock", lock_id, "--no-lock"], check=False)
            if result.returncode != 0:
                continue  # removed meanwhile
            try:
                info = json.loads(result.stdout)
            except ValueError:
                continue
            info["id"] = lock_id
            info["ts"] = parse_time(info["time"]) if "time" in info else None
            out.append(info)
        return out


__all__ = [
    "BackupSummary",
    "CheckResult",
    "ForgetResult",
    "LocalRunner",
    "Node",
    "RemoteRunner",
    "Restic",
    "ResticError",
    "ResticResult",
    "ResticVersion",
    "Snapshot",
    "classify",
    "parse_version",
    "redact_repository",
    "retention_args",
]
