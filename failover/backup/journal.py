"""The backup tables of the state file: the only SQL of the backup area.

backup_runs journals every backup and verification run (started before it runs, so that a
killed run stays visible); backup_state holds one row per site: what the schedule and the
health are computed from (failover.backup.schedule).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_runs (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,          -- backup, verify
    started REAL NOT NULL,
    finished REAL,
    ok INTEGER,                  -- NULL while running (or killed)
    snapshots TEXT,              -- JSON: {part: snapshot id}
    warning TEXT,
    error TEXT,
    detail TEXT                  -- JSON
);
CREATE INDEX IF NOT EXISTS backup_runs_by_site ON backup_runs(site, kind, started);
CREATE TABLE IF NOT EXISTS backup_state (
    site TEXT PRIMARY KEY,
    health TEXT NOT NULL DEFAULT 'unknown',
    newest_snapshot REAL,        -- time of the set's stalest part's newest snapshot
    snapshot_ids TEXT,           -- JSON: {part: newest snapshot id}
    last_attempt REAL,
    last_attempt_ok INTEGER,
    last_success REAL,           -- start of the last successful backup run
    last_verify REAL,
    last_verify_ok INTEGER,
    repo_read REAL,              -- when the repository's snapshots were last read
    error TEXT,
    updated REAL
);
"""


def ensure_schema(store: Store) -> None:
    store.ensure_schema(SCHEMA)


def has_state(store: Store) -> bool:
    """Whether the state file has the backup tables yet (readers must not create them)."""
    return store.has_table("backup_state")


def load_state(store: Store, site: str) -> dict[str, Any]:
    row = store.conn.execute("SELECT * FROM backup_state WHERE site=?", (site,)).fetchone()
    return dict(row) if row else {"site": site, "health": "unknown"}


def save_state(store: Store, site: str, **values: Any) -> None:
    values["updated"] = time.time()
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    updates = ", ".join(f"{k}=excluded.{k}" for k in values)
    with store.transaction() as c:
        c.execute(
            f"INSERT INTO backup_state(site, {cols}) VALUES (?, {marks}) "
            f"ON CONFLICT(site) DO UPDATE SET {updates}",
            (site, *values.values()),
        )


def start_run(store: Store, site: str, kind: str, started: float) -> int:
    with store.transaction() as c:
        cur = c.execute(
            "INSERT INTO backup_runs(site, kind, started) VALUES (?,?,?)", (site, kind, started)
        )
    return int(cur.lastrowid or 0)


def finish_run(
    store: Store,
    run_id: int,
    ok: bool,
    *,
    snapshots: dict[str, str] | None = None,
    warning: str | None = None,
    error: str | None = None,
    detail: Any = None,
) -> None:
    with store.transaction() as c:
        c.execute(
            "UPDATE backup_runs SET finished=?, ok=?, snapshots=?, warning=?, error=?, "
            "detail=? WHERE id=?",
            (
                time.time(),
                int(ok),
                json.dumps(snapshots or {}),
                warning,
                error,
                json.dumps(detail, default=str) if detail is not None else None,
                run_id,
            ),
        )


def runs(
    store: Store, site: str | None = None, kind: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest runs first, their JSON columns decoded."""
    query = "SELECT * FROM backup_runs WHERE 1=1"
    args: list[Any] = []
    if site:
        query += " AND site=?"
        args.append(site)
    if kind:
        query += " AND kind=?"
        args.append(kind)
    rows = store.conn.execute(
        query + " ORDER BY started DESC, id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        for key in ("snapshots", "detail"):
            if item.get(key):
                item[key] = json.loads(item[key])
        out.append(item)
    return out
