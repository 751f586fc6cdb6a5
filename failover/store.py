"""SQLite state: probes, rounds, health, transitions, incidents, runs and their steps.

WAL mode and short transactions make it safe against a killed process. Writers take an
exclusive lock file beside the database (`state.db.lock`) so that two `failover check`
processes never run at once; readers (`status`, `report`) need no lock.

Other modules keep their own tables: they pass their DDL to `Store.ensure_schema()`
(CREATE ... IF NOT EXISTS), so each feature owns its schema next to its code.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover.errors import FailoverError, StateLocked

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

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path, *, lock: bool = False, readonly: bool = False, role: str = "failover"
    ) -> Store:
        """role: what the lock holder is (`check`, `agent`, ...), kept in the lock file so that
        a process refused the lock knows who holds it."""
        path = Path(path)
        lock_fd = None
        if readonly:
            if not path.exists():
                raise FailoverError(
                    f"no state yet at {path}: run `failover check` or start the agent first"
                )
            conn = _connect(f"file:{path}?mode=ro", uri=True)
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
                conn = _connect(str(path))
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                os.chmod(path, 0o600)
            except sqlite3.Error as exc:
                if lock_fd is not None:
                    os.close(lock_fd)
                raise FailoverError(f"cannot open the state file {path}: {exc}") from None
        store = cls(path, conn, lock_fd, readonly)
        if not readonly:
            store.ensure_schema(CORE_SCHEMA)
        return store

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

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction: all of it lands, or none of it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

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
