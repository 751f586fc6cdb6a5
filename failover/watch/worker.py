"""Long work under cron: `failover check` never runs a backup, a restore or a failover run
while it holds the state lock (the next minute's round would be refused, and nothing probed
meanwhile). The round's hooks hand their long work to `Deferred` instead of running it;
once the round is recorded and the state lock released, `start_detached()` starts it in a
detached worker process and `check` returns at once.

- Each job holds a lock of its own, `<state>.jobs/<key>.lock` (flock, with the worker's pid
  and the job's key in it), from before the worker starts until it ends: a job still
  running from an earlier minute is not started twice (the same key is skipped, and said
  so at debug level); different jobs run side by side, each with its own state connection.
- The worker is forked after the round's notifications went out and the state file was
  closed; it leaves the session of cron's job (setsid), and writes its log lines to
  `<state>.jobs/worker.log` (kept under 1 MiB, one old copy). What its jobs do is in the
  state as always (backups, runs) and in the notifications.

The daemon runs the same jobs in threads instead (daemon.Agent._spawn).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from failover.logs import get_logger

if TYPE_CHECKING:
    from failover.notify import Notifier
    from failover.store import Store

log = get_logger("worker")

Job = tuple[str, Callable[["Store"], None]]
LOG_LIMIT = 1 << 20  # bytes of worker.log kept before it is rotated to worker.log.1
NOTIFY_GRACE = 5.0  # seconds beyond the notifier's bound to wait for the round's notices


class Deferred:
    """A HookContext spawn for cron: collects (key, fn) to run after the round."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self._short: set[str] = set()  # bounded work: run by `check` itself, not detached

    def __call__(self, key: str, fn: Callable[[Store], None], *, short: bool = False) -> bool:
        if any(k == key for k, _ in self.jobs):
            return False
        self.jobs.append((key, fn))
        if short:
            self._short.add(key)
        return True

    @property
    def detached(self) -> list[Job]:
        return [j for j in self.jobs if j[0] not in self._short]

    @property
    def inline(self) -> list[Job]:
        return [j for j in self.jobs if j[0] in self._short]

    def run_inline(self, state_path: Path) -> None:
        """The short jobs, here and now (the state lock is released: later rounds go on)."""
        if self.inline:
            _run_jobs(self.inline, state_path, chatty=False)


def jobs_dir(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".jobs")


def _lock_path(state_path: Path, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    return jobs_dir(state_path) / f"{safe}.lock"


def take_job_lock(state_path: Path, key: str) -> int | None:
    """The job's lock (a file descriptor), or None when another process holds it."""
    directory = jobs_dir(state_path)
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(_lock_path(state_path, key), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _mark(fd: int, key: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {key}\n".encode(), 0)


def running_jobs(state_path: Path) -> list[dict[str, object]]:
    """Jobs a worker holds right now: [{"key", "pid"}] (for `status`)."""
    out: list[dict[str, object]] = []
    directory = jobs_dir(state_path)
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.lock")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                continue  # nobody holds it
            except BlockingIOError:
                pass
            words = os.pread(fd, 256, 0).decode(errors="replace").split()
        finally:
            os.close(fd)
        if len(words) >= 2 and words[0].isdigit():
            out.append({"key": " ".join(words[1:]), "pid": int(words[0])})
    return out


def start_detached(jobs: list[Job], state_path: Path, notifier: Notifier) -> int | None:
    """Start `jobs` in a detached worker process; returns its pid (None: nothing to start).
    Call it with the state file closed (the worker opens its own connections)."""
    held: list[tuple[str, Callable[[Store], None], int]] = []
    for key, fn in jobs:
        fd = take_job_lock(state_path, key)
        if fd is None:
            log.debug("%s is still running in an earlier worker; not started again", key)
            continue
        held.append((key, fn, fd))
    if not held:
        return None
    # The round's notifications go out first: the worker starts with an empty queue.
    notifier.flush(notifier.bound + NOTIFY_GRACE)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        for _key, _fn, fd in held:
            os.close(fd)  # the worker holds them now
        log.info(
            "started %s in the background (pid %d, log in %s)",
            ", ".join(k for k, _, _ in held),
            pid,
            jobs_dir(state_path) / "worker.log",
        )
        return pid
    code = 1
    try:
        _become_worker(state_path)
        notifier.after_fork()
        for key, _fn, fd in held:
            _mark(fd, key)
        _run_jobs([(k, f) for k, f, _ in held], state_path)
        notifier.flush(notifier.bound + NOTIFY_GRACE)
        code = 0
    except BaseException as exc:  # never let the worker return into the CLI's code
        with contextlib.suppress(Exception):
            log.error("worker failed: %s: %s", exc.__class__.__name__, exc)
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _become_worker(state_path: Path) -> None:
    """Leave cron's session and its pipes: stdin from /dev/null, output to worker.log."""
    os.setsid()
    log_path = jobs_dir(state_path) / "worker.log"
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > LOG_LIMIT:
            log_path.replace(log_path.with_name("worker.log.1"))
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)


def _run_jobs(jobs: list[Job], state_path: Path, chatty: bool = True) -> None:
    """Each job in a thread of its own with its own state connection; wait for all."""
    from failover.store import Store

    say = log.info if chatty else log.debug

    def run(key: str, fn: Callable[[Store], None]) -> None:
        say("%s started", key)
        try:
            with Store.open(state_path) as store:
                fn(store)
        except Exception as exc:
            log.error("%s failed: %s: %s", key, exc.__class__.__name__, exc)
        else:
            say("%s done", key)

    threads = [threading.Thread(target=run, args=job, name=job[0]) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
