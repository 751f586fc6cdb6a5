"""A thin, typed wrapper over the restic binary: the one place restic processes run.

One `Restic` object per repository, holding its own environment: the repository location
and password always travel in restic's environment (locally) or through the SSH channel
(remotely, see providers/remote.py), never on a command line. The version is detected once
per binary and place, and newer flags are used only when present. What restic is given and
what it prints is built and parsed in `failover.backup.restic_parse` (pure).

A running restic is interrupted with SIGINT (restic 0.14 cleans up its lock on SIGINT but
not on SIGTERM): on timeout, on KeyboardInterrupt, and when this process receives SIGTERM
(forwarded while restic runs in the main thread).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol

from failover.backup.restic_parse import (
    DUMP_AFTER,
    HINTS,
    BackupSummary,
    CheckResult,
    ForgetResult,
    Node,
    ResticError,
    ResticResult,
    ResticVersion,
    Snapshot,
    backup_args,
    backup_summary,
    classify,
    dump_job,
    forget_args,
    is_status,
    json_line,
    lock_ids,
    parse_backup_output,
    parse_check,
    parse_forget,
    parse_ls,
    parse_snapshots,
    parse_time,
    parse_version,
    redact_output,
    redact_repository,
    restic_error,
    restore_args,
    snapshots_args,
    snapshots_line,
)

if TYPE_CHECKING:
    from failover.config.backup import Retention
    from providers.remote import Remote

ProgressFn = Callable[[dict[str, Any]], None]

STOP_GRACE = 15.0  # seconds between SIGINT and SIGKILL
CANCEL_POLL = 0.2  # seconds between looks at a cancel event

_SCOPE = threading.local()


@contextmanager
def cancel_on(event: threading.Event) -> Iterator[None]:
    """restic commands run by this thread inside the block are interrupted (as on timeout)
    once `event` is set, and raise ResticError(kind="interrupted"): a drill that gives way
    to a real failover stops its restore at once."""
    previous = getattr(_SCOPE, "event", None)
    _SCOPE.event = event
    try:
        yield
    finally:
        _SCOPE.event = previous


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
                hint=HINTS["not_installed"],
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

    def __init__(self, remote: Remote) -> None:
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


# --- one running restic -------------------------------------------------------------------


class _Watch:
    """What runs beside one restic process while it is read: a thread draining its stderr,
    the timeout (SIGINT, then SIGKILL after STOP_GRACE), SIGTERM forwarded to it (in the
    main thread). Leaving the block by an exception (KeyboardInterrupt included) stops the
    process first."""

    def __init__(self, proc: Proc, timeout: float | None) -> None:
        self.proc = proc
        self.timeout = timeout
        self.timed_out = False
        self.terminated = False
        self.cancelled = False
        self._cancel: threading.Event | None = getattr(_SCOPE, "event", None)
        self._chunks: list[bytes] = []
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._previous: Any = None
        self._in_main = False

    def __enter__(self) -> _Watch:
        self._reader.start()
        if self.timeout:
            threading.Thread(target=self._on_timeout, daemon=True).start()
        if self._cancel is not None:
            threading.Thread(target=self._on_cancel, daemon=True).start()
        self._in_main = threading.current_thread() is threading.main_thread()
        if self._in_main:
            try:
                self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            except ValueError:
                self._in_main = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        popen = self.proc.popen
        try:
            if exc is not None:
                self.proc.stop()
                try:
                    popen.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
        finally:
            self._done.set()
            if self._in_main and self._previous is not None:
                signal.signal(signal.SIGTERM, self._previous)
            _close(popen.stdin)
            self._reader.join(5)

    def stderr(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def _read_stderr(self) -> None:
        assert self.proc.popen.stderr is not None
        stream: Any = self.proc.popen.stderr
        for chunk in iter(lambda: stream.read1(65536), b""):
            self._chunks.append(chunk)
            if len(self._chunks) > 2000:
                del self._chunks[:1000]

    def _on_timeout(self) -> None:
        if self._done.wait(self.timeout or 0):
            return
        self.timed_out = True
        self.proc.stop()
        if not self._done.wait(STOP_GRACE):
            self.proc.kill()

    def _on_cancel(self) -> None:
        assert self._cancel is not None
        while not self._done.wait(CANCEL_POLL):
            if self._cancel.is_set():
                self.cancelled = True
                self.proc.stop()
                if not self._done.wait(STOP_GRACE):
                    self.proc.kill()
                return

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.terminated = True
        self.proc.stop()


def _read_stdout(
    popen: subprocess.Popen[bytes], sink: IO[bytes] | None, progress: ProgressFn | None
) -> tuple[list[str], list[dict[str, Any]]]:
    """restic's stdout: copied to sink when given; else its lines and its JSON messages
    (status messages go to progress instead)."""
    assert popen.stdout is not None
    lines: list[str] = []
    messages: list[dict[str, Any]] = []
    if sink is not None:
        stream: Any = popen.stdout
        for chunk in iter(lambda: stream.read1(1 << 20), b""):
            sink.write(chunk)
        return lines, messages
    for raw in popen.stdout:
        line = raw.decode(errors="replace")
        msg = json_line(line)
        if is_status(msg):
            if progress is not None:
                progress(msg)
            continue
        if msg is not None:
            messages.append(msg)
        lines.append(line)
    return lines, messages


# --- the wrapper ----------------------------------------------------------------------------


class VersionCache(Protocol):
    """Where `Restic.version` keeps what `restic version` printed, across processes."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, text: str) -> None: ...


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
        versions: VersionCache | None = None,
    ) -> None:
        self.repository = repository
        self.versions = versions
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
        secrets = self.secrets()
        secrets.pop("RESTIC_REPOSITORY")
        return redact_output(text, secrets.values())

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
        with _Watch(proc, timeout) as watch:
            out_lines, messages = _read_stdout(proc.popen, sink, progress)
            returncode = proc.popen.wait()
        stderr = self.redact(watch.stderr())
        result = ResticResult(
            returncode, "".join(out_lines), stderr, time.monotonic() - started, messages
        )
        if returncode == 255 and isinstance(self.runner, RemoteRunner):
            raise self.runner.remote.connection_error(stderr)
        if watch.timed_out:
            raise ResticError(
                f"restic {args[0]} on {self.where} timed out after {timeout:g}s "
                "and was interrupted",
                kind="timeout",
                returncode=returncode,
            )
        if watch.cancelled:
            raise ResticError(
                f"restic {args[0]} on {self.where} was interrupted: the work was called off",
                kind="interrupted",
                returncode=returncode,
            )
        if watch.terminated:
            raise ResticError(
                f"restic {args[0]} interrupted: this process received SIGTERM",
                kind="interrupted",
                returncode=returncode,
            )
        if check and returncode not in ok_codes:
            raise self.error(args[0], returncode, stderr)
        return result

    def error(self, command: str, returncode: int, stderr: str) -> ResticError:
        return restic_error(
            command, returncode, stderr, where=self.where, description=self.runner.description
        )

    # --- commands -----------------------------------------------------------------------

    def _retry_lock(self) -> list[str]:
        """restic 0.16+ can wait for a live lock to go instead of failing at once."""
        try:
            return ["--retry-lock", "2m"] if self.version().at_least(0, 16) else []
        except ResticError:
            return []

    def version(self) -> ResticVersion:
        """restic's version where it runs, asked once per binary and place (and, with a
        `versions` cache, once per local binary file: its path, size and mtime)."""
        key = (self.runner.key, self.binary)
        with _VERSIONS_LOCK:
            if key in _VERSIONS:
                return _VERSIONS[key]
        stamp = self._binary_stamp()
        if stamp is not None and self.versions is not None:
            text = self.versions.get(stamp)
            if text:
                try:
                    version = parse_version(text)
                except ResticError:
                    pass
                else:
                    with _VERSIONS_LOCK:
                        _VERSIONS[key] = version
                    return version
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
                    hint=HINTS["not_installed"],
                ) from None
            code, out, err = done.returncode, done.stdout, done.stderr
        if code != 0:
            raise self.error("version", code, err.decode(errors="replace"))
        text = out.decode(errors="replace")
        version = parse_version(text)
        with _VERSIONS_LOCK:
            _VERSIONS[key] = version
        if stamp is not None and self.versions is not None:
            self.versions.put(stamp, text.strip()[:200])
        return version

    def _binary_stamp(self) -> str | None:
        """The local binary's identity for the version cache: path, size, mtime."""
        if isinstance(self.runner, RemoteRunner):
            return None
        path = shutil.which(self.binary)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"

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
        dump = stdin_command is not None
        args = backup_args(
            paths,
            stdin_filename=(stdin_filename or "stdin") if dump else None,
            exclude=exclude,
            tags=tags,
            host=host,
        )
        job = None
        if stdin_command is not None:
            job = dump_job(stdin_command, self.secrets(), stdin_secrets or {})
        result = self.run(
            args,
            progress=progress,
            timeout=timeout,
            job=job,
            after=DUMP_AFTER if dump else "",
            extra_secrets=stdin_secrets,
            ok_codes=(0, 3),
        )
        summary, _ = parse_backup_output(result.stdout.splitlines())
        if summary is None:
            raise ResticError(
                f"restic backup on {self.where} printed no summary", returncode=result.returncode
            )
        if dump and (result.returncode == 3 or not summary.get("total_bytes_processed")):
            # An empty or unreadable dump must never stand as a good snapshot.
            if summary.get("snapshot_id"):
                self.run(["forget", str(summary["snapshot_id"])], check=False)
            raise ResticError(
                f"dump {stdin_filename} produced no output; its snapshot was removed",
                kind="dump_failed",
                returncode=result.returncode,
            )
        return backup_summary(summary, result.returncode, result.duration, result.stderr)

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
        args = snapshots_args(tags=tags, host=host, paths=paths, latest=latest)
        result = self.run(args, timeout=timeout)
        return parse_snapshots(snapshots_line(result.stdout))

    def forget(
        self,
        retention: Retention | Mapping[str, Any] | None,
        *,
        prune: bool = True,
        tags: Sequence[str] = (),
        host: str | None = None,
        group_by: str = "host,paths",
        timeout: float | None = None,
    ) -> ForgetResult:
        args = forget_args(retention, prune=prune, tags=tags, host=host, group_by=group_by)
        result = self.run(args + self._retry_lock(), timeout=timeout)
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
        args = restore_args(
            snapshot, target, include=include, exclude=exclude, verify=verify, tags=tags, host=host
        )
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
        out = []
        for lock_id in lock_ids(self.run(["list", "locks", "--no-lock"]).stdout):
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
