"""SQLite state: probes, rounds, health, transitions, incidents, runs and their steps.

WAL mode and short transactions make it safe against a killed process. Writers take an
exclusive lock file beside the database (`state.db.lock`) so that two `failover check`
processes never run at once; readers (`status`, `report`) need no lock.

Other modules keep their own tables: they pass their DDL to `Store.ensure_schema()`
(CREATE ... IF NOT EXISTS), so each feature owns its schema next to its code.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from failover.config.files import file_kind
from failover.errors import FailoverError, StateError, StateLocked
from failover.scrub import describe_exception, scrub

APPLICATION_ID = 0x464F5652  # "FOVR" in the SQLite header: this file is failover's state
LEGACY_TABLES = {"meta", "rounds"}  # a state written before the application id
SQLITE_MAGIC = b"SQLite format 3\x00"
MOVE_ASIDE = "move it aside and run again; history is lost, runs are not resumable"

_last_path: Path | None = None  # the state this process opened last: named in late errors

# SQLite's locks are POSIX advisory locks, which belong to the process: closing *any*
# descriptor of the database file drops every lock this process's connections hold on it
# (https://sqlite.org/howtocorrupt.html, 2.2). Another process then believes it holds the
# last connection, checkpoints and deletes the WAL under ours: the state is corrupted.
# So the header is read with a descriptor of our own only while no connection of this
# process has the file open; later opens (a drill's watcher thread, the worker's jobs)
# trust the first one's inspection. Keyed by (device, inode), guarded by one lock.
_open_guard = threading.Lock()
_open_files: dict[tuple[int, int], int] = {}

CORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,            -- unix time the round started
    duration REAL,
    network_ok INTEGER NOT NULL, -- 0: canaries failed, the round counts for nothing
    canaries_ok INTEGER NOT NULL,
    canaries_total INTEGER NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS probes (
    id INTEGER PRIMARY KEY,
    round_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    site TEXT NOT NULL,          -- '' for canaries
    endpoint TEXT NOT NULL,      -- the canary's label for canaries
    check_name TEXT NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms REAL,
    detail TEXT,
    warning TEXT
);
CREATE INDEX IF NOT EXISTS probes_by_endpoint ON probes(site, endpoint, ts);
CREATE INDEX IF NOT EXISTS probes_by_round ON probes(site, endpoint, round_id);
CREATE INDEX IF NOT EXISTS probes_by_ts ON probes(ts);
CREATE TABLE IF NOT EXISTS observations (
    site TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    ts REAL NOT NULL,
    ok INTEGER,                  -- NULL: inconclusive (agent's network down)
    PRIMARY KEY (site, endpoint, ts)
);
CREATE TABLE IF NOT EXISTS health (
    site TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    state TEXT NOT NULL,         -- JSON of health.HealthState
    PRIMARY KEY (site, endpoint)
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    site TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_site ON transitions(site, ts);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    first_failure REAL NOT NULL,
    declared_down REAL NOT NULL,
    recovered REAL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS site_state (
    site TEXT PRIMARY KEY,
    active TEXT NOT NULL,        -- the endpoint serving the site now
    since REAL NOT NULL,
    last_switch REAL
);
CREATE TABLE IF NOT EXISTS agent_events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,          -- offline, online, started, stopped, reload
    detail TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Transition:
    ts: float
    site: str
    endpoint: str
    from_state: str
    to_state: str
    reason: str | None


class Store:
    """One SQLite state file. Use `Store.open(path, lock=True)` for writers."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock_fd: int | None, readonly: bool = False
    ) -> None:
        self.path = path
        self.conn = conn
        self._lock_fd = lock_fd
        self.readonly = readonly
        self._schemas: set[str] = set()
        self._file_key: tuple[int, int] | None = None  # its entry in _open_files

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path, *, lock: bool = False, readonly: bool = False, role: str = "failover"
    ) -> Store:
        """Open the state file, refusing anything that is not failover's own state (a
        device, a directory, a FIFO, another program's database) before touching it.
        Every failure is a StateError whose message says what to do. role: what the lock
        holder is (`check`, `agent`, ...), kept in the lock file so that a process refused
        the lock knows who holds it."""
        global _last_path
        path = Path(path)
        _last_path = path
        try:
            return cls._open(path, lock=lock, readonly=readonly, role=role)
        except sqlite3.Error as exc:
            raise state_error(exc, path) from None
        except OSError as exc:
            raise state_os_error(exc, path) from None

    @classmethod
    def _open(cls, path: Path, *, lock: bool, readonly: bool, role: str) -> Store:
        with _open_guard:
            key = _file_key(path)
            if key is not None and _open_files.get(key, 0) > 0:
                kind = "ours"  # inspected when it was first opened; never os.open'ed again
            else:
                kind = inspect_state_file(path)
                if kind == "unstamped":
                    kind = _check_unstamped(path)
            store = cls._connect_store(path, kind, lock=lock, readonly=readonly, role=role)
            store._register()
        try:
            if not readonly:
                if kind != "ours":  # new, empty, or our state from before the application id
                    store.conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                _fix_mode(path)
                store.conn.execute("PRAGMA journal_mode=WAL")
                store.conn.execute("PRAGMA synchronous=NORMAL")
                store.ensure_schema(CORE_SCHEMA)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _connect_store(
        cls, path: Path, kind: str, *, lock: bool, readonly: bool, role: str
    ) -> Store:
        lock_fd = None
        if readonly:
            if kind == "missing":
                raise FailoverError(
                    f"no state yet at {path}: run `failover check` or start the agent first"
                )
            conn = _connect_readonly(path)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise FailoverError(
                    f"cannot create the state directory {path.parent}: {exc.strerror}",
                    hint="set `state:` in the config to a writable path",
                ) from None
            if lock:
                lock_fd = _take_lock(path, role)
            try:
                if kind == "missing":
                    _create_private(path)
                conn = _connect(str(path))
            except BaseException:
                if lock_fd is not None:
                    os.close(lock_fd)
                raise
        return cls(path, conn, lock_fd, readonly)

    def _register(self) -> None:
        """Count this connection in _open_files (called with _open_guard held)."""
        key = _file_key(self.path)
        if key is not None:
            _open_files[key] = _open_files.get(key, 0) + 1
            self._file_key = key

    def ensure_schema(self, ddl: str) -> None:
        """Create a feature's tables if missing. A read-only store (status, report) skips
        it: readers must cope with tables that do not exist yet (see `has_table`)."""
        if self.readonly or ddl in self._schemas:
            return
        # executescript() manages its own transaction: wrap the DDL so it lands whole.
        self.conn.executescript("BEGIN IMMEDIATE;" + ddl + "\nCOMMIT;")
        self._schemas.add(ddl)  # once per connection: callers may ask before every use

    def has_table(self, name: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    def probe_write(self) -> None:
        """Start and end a write transaction: raises when the state cannot be written
        (read-only file system, another owner, a full disk shows up at the next write)."""
        try:
            with self.transaction():
                pass
        except sqlite3.Error as exc:
            raise FailoverError(f"cannot write the state file {self.path}: {exc}") from None

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            with _open_guard:
                if self._file_key is not None:
                    left = _open_files.get(self._file_key, 1) - 1
                    if left > 0:
                        _open_files[self._file_key] = left
                    else:
                        _open_files.pop(self._file_key, None)
                    self._file_key = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction: all of it lands, or none of it. A failed COMMIT
        (a full disk) is rolled back too, so the connection stays usable for the next one."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite may have rolled back already (SQLITE_FULL): only roll back what is open.
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    # --- rounds and probes --------------------------------------------------------------

    def add_round(
        self,
        ts: float,
        duration: float,
        network_ok: bool,
        canaries_ok: int,
        canaries_total: int,
        probes: list[dict[str, Any]],
        detail: str | None = None,
    ) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO rounds(ts, duration, network_ok, canaries_ok, canaries_total, detail)"
                " VALUES (?,?,?,?,?,?)",
                (ts, duration, int(network_ok), canaries_ok, canaries_total, detail),
            )
            round_id = int(cur.lastrowid or 0)
            c.executemany(
                "INSERT INTO probes(round_id, ts, site, endpoint, check_name, ok, latency_ms,"
                " detail, warning) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        round_id,
                        p["ts"],
                        p["site"],
                        p["endpoint"],
                        p["check"],
                        int(p["ok"]),
                        p.get("latency_ms"),
                        p.get("detail"),
                        p.get("warning"),
                    )
                    for p in probes
                ],
            )
        return round_id

    def last_probes(self, site: str, endpoint: str) -> list[sqlite3.Row]:
        """The probes of the newest round that probed this endpoint."""
        return self.conn.execute(
            "SELECT * FROM probes WHERE round_id = (SELECT MAX(round_id) FROM probes"
            " WHERE site=? AND endpoint=?) AND site=? AND endpoint=? ORDER BY check_name",
            (site, endpoint, site, endpoint),
        ).fetchall()

    def round_network(self, since: float = 0.0) -> list[tuple[float, bool]]:
        """(start, network_ok) of every round since `since`, oldest first."""
        return [
            (r[0], bool(r[1]))
            for r in self.conn.execute(
                "SELECT ts, network_ok FROM rounds WHERE ts >= ? ORDER BY ts", (since,)
            )
        ]

    def failed_probes(
        self, site: str, endpoint: str, start: float, end: float
    ) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT ts, check_name, ok, detail FROM probes WHERE site=? AND endpoint=? AND ts>=?"
            " AND ts<=? AND ok=0 ORDER BY ts",
            (site, endpoint, start, end),
        ).fetchall()

    # --- aggregates for charts and evidence (reports, the status page) --------------------

    def observation_buckets(
        self, site: str, endpoint: str, start: float, end: float, width: float
    ) -> list[sqlite3.Row]:
        """Rounds of one endpoint per bucket of `width` seconds from `start`: bucket number,
        conclusive rounds, failed rounds, inconclusive rounds."""
        return self.conn.execute(
            "SELECT CAST((ts - ?) / ? AS INTEGER) AS bucket, COUNT(ok) AS rounds,"
            " COALESCE(SUM(ok = 0), 0) AS failed, COALESCE(SUM(ok IS NULL), 0) AS inconclusive"
            " FROM observations WHERE site=? AND endpoint=? AND ts >= ? AND ts < ?"
            " GROUP BY bucket ORDER BY bucket",
            (start, width, site, endpoint, start, end),
        ).fetchall()

    def latency_buckets(
        self, site: str, endpoint: str, check: str, start: float, end: float, width: float
    ) -> list[sqlite3.Row]:
        """One check's answered probes per bucket: bucket number, mean and max latency (ms)."""
        return self.conn.execute(
            "SELECT CAST((ts - ?) / ? AS INTEGER) AS bucket, AVG(latency_ms) AS avg_ms,"
            " MAX(latency_ms) AS max_ms FROM probes WHERE site=? AND endpoint=? AND"
            " check_name=? AND ts >= ? AND ts < ? AND latency_ms IS NOT NULL"
            " GROUP BY bucket ORDER BY bucket",
            (start, width, site, endpoint, check, start, end),
        ).fetchall()

    def failure_details(
        self, site: str, endpoint: str, start: float, end: float, limit: int = 12
    ) -> list[sqlite3.Row]:
        """What the failed probes said, grouped: check, detail, count, first and last time."""
        return self.conn.execute(
            "SELECT check_name, detail, COUNT(*) AS n, MIN(ts) AS first, MAX(ts) AS last"
            " FROM probes WHERE site=? AND endpoint=? AND ts >= ? AND ts <= ? AND ok=0"
            " GROUP BY check_name, detail ORDER BY first LIMIT ?",
            (site, endpoint, start, end, limit),
        ).fetchall()

    def round_counts(self, start: float, end: float) -> tuple[int, int]:
        """(rounds, rounds with a working network) that started in [start, end]."""
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(network_ok), 0) FROM rounds WHERE ts >= ? AND ts <= ?",
            (start, end),
        ).fetchone()
        return int(row[0]), int(row[1])

    def last_round(self) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM rounds ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return row

    def prune(self, older_than: float) -> int:
        with self.transaction() as c:
            n = c.execute("DELETE FROM probes WHERE ts < ?", (older_than,)).rowcount
            c.execute("DELETE FROM observations WHERE ts < ?", (older_than,))
            c.execute("DELETE FROM rounds WHERE ts < ?", (older_than,))
        return n

    # --- observations and health --------------------------------------------------------

    def observations(
        self, site: str, endpoint: str, since: float | None = None
    ) -> list[tuple[float, bool | None]]:
        rows = self.conn.execute(
            "SELECT ts, ok FROM observations WHERE site=? AND endpoint=? AND ts >= ? ORDER BY ts",
            (site, endpoint, since or 0.0),
        ).fetchall()
        return [(r[0], None if r[1] is None else bool(r[1])) for r in rows]

    def health_state(self, site: str, endpoint: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT state FROM health WHERE site=? AND endpoint=?", (site, endpoint)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def all_health(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (r[0], r[1]): json.loads(r[2])
            for r in self.conn.execute("SELECT site, endpoint, state FROM health")
        }

    def record_observation(
        self,
        site: str,
        endpoint: str,
        ts: float,
        ok: bool | None,
        state: dict[str, Any],
        transition: Transition | None,
        incident: str | None,
        incident_start: float | None = None,
    ) -> None:
        """Store one observation and the health it leads to, in one transaction.

        incident: 'open' when the endpoint was just declared down (the outage began at
        `incident_start`), 'close' when it recovered.
        """
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO observations(site, endpoint, ts, ok) VALUES (?,?,?,?)",
                (site, endpoint, ts, None if ok is None else int(ok)),
            )
            c.execute(
                "INSERT OR REPLACE INTO health(site, endpoint, state) VALUES (?,?,?)",
                (site, endpoint, json.dumps(state)),
            )
            if transition is not None:
                c.execute(
                    "INSERT INTO transitions(ts, site, endpoint, from_state, to_state, reason)"
                    " VALUES (?,?,?,?,?,?)",
                    (
                        transition.ts,
                        site,
                        endpoint,
                        transition.from_state,
                        transition.to_state,
                        transition.reason,
                    ),
                )
            if incident == "open":
                c.execute(
                    "INSERT INTO incidents(site, endpoint, first_failure, declared_down)"
                    " VALUES (?,?,?,?)",
                    (site, endpoint, incident_start or ts, ts),
                )
            elif incident == "close":
                c.execute(
                    "UPDATE incidents SET recovered=? WHERE site=? AND endpoint=?"
                    " AND recovered IS NULL",
                    (ts, site, endpoint),
                )

    def transitions(self, site: str | None = None, since: float = 0.0) -> list[Transition]:
        query = (
            "SELECT ts, site, endpoint, from_state, to_state, reason FROM transitions WHERE ts >= ?"
        )
        args: list[Any] = [since]
        if site:
            query += " AND site = ?"
            args.append(site)
        return [Transition(*row) for row in self.conn.execute(query + " ORDER BY ts, id", args)]

    def incidents(self, site: str | None = None, since: float = 0.0) -> list[sqlite3.Row]:
        query = "SELECT * FROM incidents WHERE (recovered IS NULL OR recovered >= ?)"
        args: list[Any] = [since]
        if site:
            query += " AND site = ?"
            args.append(site)
        return self.conn.execute(query + " ORDER BY first_failure", args).fetchall()

    # --- which endpoint serves a site ------------------------------------------------------

    def active_endpoint(self, site: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM site_state WHERE site=?", (site,)
        ).fetchone()
        return row

    def active_or(self, site: str, default: str) -> str:
        """The endpoint recorded as active, or `default` (the config's) before any is."""
        row = self.active_endpoint(site)
        return str(row["active"]) if row else default

    def ensure_active(self, site: str, endpoint: str, ts: float | None = None) -> str:
        """Record `endpoint` as active unless the state already names one; return the active."""
        row = self.active_endpoint(site)
        if row is not None:
            return str(row["active"])
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO site_state(site, active, since) VALUES (?,?,?)",
                (site, endpoint, ts or time.time()),
            )
        row = self.active_endpoint(site)
        assert row is not None
        return str(row["active"])

    def set_active(
        self, site: str, endpoint: str, ts: float | None = None, switched: bool = True
    ) -> None:
        now = ts or time.time()
        with self.transaction() as c:
            c.execute(
                "INSERT INTO site_state(site, active, since, last_switch) VALUES (?,?,?,?)"
                " ON CONFLICT(site) DO UPDATE SET active=excluded.active, since=excluded.since,"
                " last_switch=COALESCE(excluded.last_switch, site_state.last_switch)",
                (site, endpoint, now, now if switched else None),
            )

    # --- agent events ---------------------------------------------------------------------

    def add_agent_event(
        self, kind: str, detail: str | None = None, ts: float | None = None
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO agent_events(ts, kind, detail) VALUES (?,?,?)",
                (ts or time.time(), kind, detail),
            )

    def agent_events(self, since: float = 0.0) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM agent_events WHERE ts >= ? ORDER BY ts, id", (since,)
        ).fetchall()

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def delete_meta(self, key: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM meta WHERE key=?", (key,))

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)", (key, value))


def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so transactions are explicit.
    conn = sqlite3.connect(
        target, uri=uri, isolation_level=None, timeout=10.0, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def lock_holder(path: Path) -> str | None:
    """The pid that holds the state's process lock (the agent, a `check`), or None."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 128, 0).decode(errors="replace").split()  # "PID ROLE"
        return holder[0] if holder else "?"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _take_lock(path: Path, role: str = "failover") -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 128, 0).decode(errors="replace").split()
        finally:
            os.close(fd)
        pid = holder[0] if holder else "?"
        held_by = " ".join(holder[1:]) or None
        what = f"pid {pid}, `failover {held_by}`" if held_by else f"pid {pid}"
        error = StateLocked(
            f"another failover process ({what}) is using {path}",
            hint="wait for it to finish, or stop the agent before running this by hand",
        )
        error.holder_pid = int(pid) if pid.isdigit() else None
        error.holder_role = held_by
        raise error from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {role}".encode(), 0)
    return fd


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A reader's connection. On a read-only file system SQLite cannot create the WAL's
    shared-memory file: nobody can write there either, so the file is read as immutable."""
    target = f"file:{quote(str(path))}?mode=ro"
    if _read_only_fs(path):
        target += "&immutable=1"
    return _connect(target, uri=True)


def _create_private(path: Path) -> None:
    """Create the new state file empty with mode 0600 (never a moment readable by others)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:  # created in between: inspected again by the caller's claim
        pass


def _fix_mode(path: Path) -> None:
    """Our own state file is private: 0600, when this user owns it (never chmod another's)."""
    st = os.stat(path)
    if st.st_uid == os.geteuid() and st.st_mode & 0o077:
        os.chmod(path, 0o600)


def inspect_state_file(path: Path) -> str:
    """What is at the state path, without opening it as a database: "missing", "empty"
    (a zero-length file: nothing to lose), "ours" (our application id in the header) or
    "unstamped" (a SQLite database with none). Anything else is refused here, before it
    is touched."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        raise StateError(
            f"the state path {path} goes through a file that is not a directory",
            hint="set `state:` in the config to a path such as /var/lib/failover/state.db",
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise StateError(
            f"the state path {path} is {file_kind(st.st_mode)}, not a state file",
            hint="set `state:` in the config to a file path such as /var/lib/failover/state.db",
        )
    if st.st_size == 0:
        return "empty"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except PermissionError:
        raise state_os_error(PermissionError(errno.EACCES, "denied"), path) from None
    try:
        header = os.pread(fd, 100, 0)
    finally:
        os.close(fd)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise StateError(
            f"the state file {path} is not a SQLite database (damaged, or not a state file)",
            hint=MOVE_ASIDE,
        )
    app_id = int.from_bytes(header[68:72], "big")
    if app_id == APPLICATION_ID:
        return "ours"
    if app_id != 0:
        raise _foreign(path, f"its SQLite application id is {app_id:#010x}")
    return "unstamped"


def _check_unstamped(path: Path) -> str:
    """A SQLite database without an application id in its header: "ours" (stamped, the
    stamp still in the write-ahead log), "legacy" (a state from before the application id:
    it has our tables), else refused. Read through a read-only connection: a database of
    another program is not written to."""
    conn = _connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    if app_id == APPLICATION_ID:
        return "ours"
    if app_id != 0:
        raise _foreign(path, f"its SQLite application id is {app_id:#010x}")
    if tables >= LEGACY_TABLES:
        return "legacy"
    raise _foreign(path, "it has no failover tables" if tables else "it is empty")


def _foreign(path: Path, why: str) -> StateError:
    return StateError(
        f"the state path {path} is another program's SQLite database ({why}); "
        "failover leaves it alone",
        hint="set `state:` in the config to a file of failover's own",
    )


def _owner(path: Path) -> str:
    for candidate in (path, path.parent):
        try:
            uid = os.stat(candidate).st_uid
        except OSError:
            continue
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"uid {uid}"
    return "another user"


def _me() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def state_os_error(exc: OSError, path: Path) -> StateError:
    """An OSError met while opening the state (its lock file, its directory) as one line."""
    code = exc.errno
    if code == errno.ENOSPC:
        return _full(path)
    if code == errno.EROFS:
        return _read_only(path)
    if code in (errno.EACCES, errno.EPERM):
        return StateError(
            f"the state {path} belongs to {_owner(path)} and {_me()} may not write it",
            hint="run failover as that user, or set `state:` in the config to a file of yours",
        )
    return StateError(f"cannot use the state {path}: {exc.strerror or exc}")


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _no_space(path: Path) -> bool:
    """The file system holding `path` has (almost) no block left for this user."""
    try:
        vfs = os.statvfs(path.parent)
    except OSError:
        return False
    return vfs.f_bavail * vfs.f_frsize < 64 * 1024


def _full(path: Path) -> StateError:
    return StateError(
        f"the disk holding the state {path} is full: this was not recorded",
        hint="free some space there; the agent goes on, and records again once it can",
    )


def _read_only(path: Path) -> StateError:
    return StateError(
        f"the state {path} is on a read-only file system or not writable",
        hint="remount it read-write, or set `state:` in the config to a writable path",
    )


def describe_failure(exc: BaseException) -> str:
    """How a failure is logged or journaled, on one line and scrubbed of secrets: a SQLite
    error as the state's error (what to do), anything else as `Class: message`."""
    if isinstance(exc, sqlite3.Error):
        return scrub(str(state_error(exc)))
    return describe_exception(exc)


def _damaged(exc: sqlite3.Error, name: str) -> bool:
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return True
    detail = str(exc)
    return type(exc) is sqlite3.DatabaseError and (
        "malformed" in detail or "not a database" in detail
    )


def state_error(exc: sqlite3.Error, path: Path | None = None) -> StateError:
    """A SQLite error on the state as one line that says what to do."""
    where = path or _last_path or Path("(state)")
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = str(exc)
    if name == "SQLITE_FULL" or "database or disk is full" in detail:
        return _full(where)
    if name.startswith("SQLITE_READONLY") or "readonly database" in detail:
        if not _read_only_fs(where) and not os.access(where, os.W_OK):
            return state_os_error(PermissionError(errno.EACCES, "denied"), where)
        return _read_only(where)
    if name.startswith("SQLITE_IOERR") and _no_space(where):  # a write that hit ENOSPC
        return _full(where)
    if name.startswith("SQLITE_IOERR"):
        return StateError(
            f"disk I/O error on the state {where}: this was not recorded",
            hint="the disk may be full or failing: check `df` and the kernel log",
        )
    if _damaged(exc, name):
        return StateError(f"the state file {where} is damaged ({detail})", hint=MOVE_ASIDE)
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in detail:
        if os.access(where, os.F_OK) and not os.access(where, os.R_OK):
            return state_os_error(PermissionError(errno.EACCES, "denied"), where)
        return StateError(
            f"cannot open the state {where} ({detail})",
            hint="its directory must exist and be writable by this user; a read-only state "
            "also needs its -wal and -shm files",
        )
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return StateError(
            f"the state {where} stayed busy ({detail})",
            hint="another process holds it in a long transaction; try again",
        )
    return StateError(f"state {where}: {detail}")
