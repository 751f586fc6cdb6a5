"""The state file: only failover's own SQLite database is used; anything else at the
`state:` path is refused before it is touched, and state trouble (damaged, another user's,
a full or read-only disk) is one line that says what to do, never an internal error
(issue #10). Full and read-only disks are real: a small tmpfs mounted for the test."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.errors import StateError
from failover.store import APPLICATION_ID, Store
from tests.support import require, require_root, write
from tests.support.cli import REPO, failover
from tests.support.disks import fill, remount_read_only, small_disk

SITE = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 127.0.0.1}
    checks:
      - {type: tcp, port: 9, timeout: 500ms}
    policy: {interval: 1s, down_after: 1s, up_after: 1s}
"""


def config_for(directory: Path, state: Path | str) -> Path:
    return write(directory / "failover.yaml", f"state: {state}\n" + SITE)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- what is not a state file -------------------------------------------------------------


def test_dev_null_as_state_is_refused_and_left_alone(tmp_path: Path) -> None:
    before = os.stat("/dev/null")
    had_lock = os.path.exists("/dev/null.lock")
    config = config_for(tmp_path, "/dev/null")
    try:
        for command in (("check",), ("status",), ("runs", "list")):
            line = one_error_line(failover(*command, config=config, timeout=60))
            assert "the state path /dev/null is a character device, not a state file" in line
        after = os.stat("/dev/null")
        assert stat.S_ISCHR(after.st_mode) and after.st_mode == before.st_mode
        assert after.st_uid == before.st_uid
        assert not os.path.exists("/dev/null.lock")
    finally:  # a broken build must not leave this machine's /dev/null damaged (main did)
        if stat.S_IMODE(os.stat("/dev/null").st_mode) != stat.S_IMODE(before.st_mode):
            os.chmod("/dev/null", stat.S_IMODE(before.st_mode))
        if not had_lock and os.path.exists("/dev/null.lock"):
            os.unlink("/dev/null.lock")


def test_a_directory_or_a_fifo_as_state_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    line = one_error_line(failover("check", config=config_for(tmp_path, directory)))
    assert f"the state path {directory} is a directory" in line
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    line = one_error_line(failover("check", config=config_for(tmp_path, fifo), timeout=30))
    assert f"the state path {fifo} is a FIFO" in line
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert not (tmp_path / "fifo.lock").exists() and not (tmp_path / "dir.lock").exists()


@pytest.mark.parametrize("application_id", [0, 0x12345678])
def test_another_programs_sqlite_file_is_refused_untouched(
    tmp_path: Path, application_id: int
) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute(f"PRAGMA application_id={application_id}")
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO accounts(name) VALUES ('alice')")
    conn.commit()
    conn.close()
    other.chmod(0o644)
    before = digest(other)
    line = one_error_line(failover("check", config=config_for(tmp_path, other)))
    assert f"the state path {other} is another program's SQLite database" in line
    assert "failover leaves it alone" in line and "set `state:`" in line
    assert digest(other) == before
    assert stat.S_IMODE(other.stat().st_mode) == 0o644  # no chmod
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failover.yaml", "other.db"]


def test_a_file_that_is_not_sqlite_says_move_it_aside(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(b"this is not a database\n" * 20)
    line = one_error_line(failover("check", config=config_for(tmp_path, state)))
    assert f"the state file {state} is not a SQLite database" in line
    assert "move it aside and run again; history is lost, runs are not resumable" in line


def test_a_damaged_state_says_move_it_aside(tmp_path: Path) -> None:
    config = config_for(tmp_path, tmp_path / "state.db")
    assert failover("check", config=config, timeout=60).returncode == 0
    state = tmp_path / "state.db"
    data = bytearray(state.read_bytes())
    assert len(data) > 8192
    data[4096:] = b"\xa5" * (len(data) - 4096)  # every page after the first one
    state.write_bytes(bytes(data))
    for command in (("check",), ("status",)):
        line = one_error_line(failover(*command, config=config, timeout=60))
        assert f"the state file {state} is damaged" in line, line
        assert "move it aside and run again; history is lost, runs are not resumable" in line


# --- our own files --------------------------------------------------------------------------


def header_application_id(path: Path) -> int:
    with open(path, "rb") as f:
        header = f.read(100)
    return int.from_bytes(header[68:72], "big")


def test_new_state_is_stamped_private_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.db"
    with Store.open(path, lock=True) as store:
        store.set_meta("x", "1")
    assert header_application_id(path) == APPLICATION_ID
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Store.open(path, readonly=True) as store:
        assert store.get_meta("x") == "1"


def test_a_state_from_before_the_application_id_is_accepted_and_stamped(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(path, lock=True) as store:
        store.set_meta("kept", "yes")
        store.conn.execute("PRAGMA application_id=0")  # as every release before this one
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert header_application_id(path) == 0
    with Store.open(path, readonly=True) as store:  # a reader accepts it, and stamps nothing
        assert store.get_meta("kept") == "yes"
    assert header_application_id(path) == 0
    with Store.open(path, lock=True) as store:
        assert store.get_meta("kept") == "yes"
    assert header_application_id(path) == APPLICATION_ID


def test_an_empty_sqlite_database_is_not_taken_for_ours(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=3")  # a database with a header and no tables
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="another program's SQLite database"):
        Store.open(path, lock=True)
    # a zero-length file has nothing to lose: it becomes the state
    blank = tmp_path / "blank.db"
    blank.touch()
    with Store.open(blank, lock=True) as store:
        store.set_meta("x", "1")
    assert header_application_id(blank) == APPLICATION_ID


# --- another user's state -------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="failover-state-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_state_owned_by_another_user_is_one_line(shared_dir: Path) -> None:
    require_root()
    setpriv = shutil.which("setpriv")
    require(setpriv is not None, "setpriv (util-linux) is needed to run as another user")
    state_dir = shared_dir / "state"
    state_dir.mkdir(mode=0o755)
    config = config_for(shared_dir, state_dir / "state.db")
    config.chmod(0o644)
    assert failover("check", config=config, timeout=60).returncode == 0  # root's state
    before = digest(state_dir / "state.db")
    as_nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    for command in (("check",), ("status",)):
        proc = subprocess.run(
            [*as_nobody, sys.executable, "-m", "failover", "--config", str(config), *command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": "/nonexistent",
                "LANG": "C.UTF-8",
                "PYTHONPATH": str(REPO),
                "PYTHONDONTWRITEBYTECODE": "1",
            },
        )
        line = one_error_line(proc)
        assert f"the state {state_dir / 'state.db'} belongs to root and nobody may not" in line
        assert "run failover as that user" in line
    assert digest(state_dir / "state.db") == before


# --- full and read-only disks ---------------------------------------------------------------


@pytest.fixture
def small_disk_dir() -> Iterator[Path]:
    with small_disk() as where:
        yield where


def test_check_on_a_full_disk_is_one_line(small_disk_dir: Path, tmp_path: Path) -> None:
    small_disk = small_disk_dir
    config = config_for(tmp_path, small_disk / "state.db")
    filler = fill(small_disk)
    line = one_error_line(failover("check", config=config, timeout=60))
    assert f"the disk holding the state {small_disk / 'state.db'} is full" in line
    assert "free some space" in line
    filler.unlink()
    assert failover("check", config=config, timeout=60).returncode == 0
    fill(small_disk)  # full again, now with a state that has been in use
    line = one_error_line(failover("check", config=config, timeout=60))
    assert "is full" in line


def test_a_read_only_state_is_one_line(small_disk_dir: Path, tmp_path: Path) -> None:
    small_disk = small_disk_dir
    config = config_for(tmp_path, small_disk / "state.db")
    assert failover("check", config=config, timeout=60).returncode == 0
    remount_read_only(small_disk)
    line = one_error_line(failover("check", config=config, timeout=60))
    assert "is on a read-only file system or not writable" in line
    assert "remount it read-write, or set `state:`" in line
    status = failover("status", config=config, timeout=60)  # reading still works
    assert status.returncode == 0, status.stderr
    assert "shop" in status.stdout


def _touch_from_another_process(path: Path) -> None:
    """What a `failover check` does each minute: open the state, read, close."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM sqlite_master').fetchall(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=30)


def test_a_second_connection_in_one_process_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    # SQLite's locks are the process's POSIX locks: closing any descriptor of the database
    # (reading its header) drops them all. The drill's watcher thread did so while the
    # drill wrote: the next `check` to close found itself "last", checkpointed and deleted
    # the WAL under the drill's connection, and the state came out malformed.
    path = tmp_path / "state.db"
    writer = Store.open(path, lock=True)
    try:
        writer.set_meta("before", "1")
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        reader = Store.open(path, readonly=True)  # as the drill's watcher thread does
        reader.close()
        with Store.open(path) as other:  # as a worker's job thread does
            other.set_meta("job", "1")
        _touch_from_another_process(path)
        assert wal.exists(), "another process took our connection for gone and removed the WAL"
        for n in range(50):  # the writer goes on; another process reads between commits
            writer.set_meta("n", str(n))
            if n % 10 == 0:
                _touch_from_another_process(path)
    finally:
        writer.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert dict(conn.execute("SELECT key, value FROM meta"))["n"] == "49"
    finally:
        conn.close()
