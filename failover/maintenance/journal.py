"""The state of maintenance: pauses a person set, and the periods the agent spent with a
site in maintenance (for status, the report and uptime)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.maintenance.window import Pause

if TYPE_CHECKING:
    from failover.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS pauses (
    site TEXT PRIMARY KEY,
    since REAL NOT NULL,
    until REAL,                  -- NULL: until `failover resume`
    reason TEXT
);
CREATE TABLE IF NOT EXISTS maintenance_periods (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,          -- pause, window
    reason TEXT,
    start REAL NOT NULL,         -- the first round that found the site in maintenance
    end REAL NOT NULL,           -- the last one (or when it ended)
    open INTEGER NOT NULL        -- 1 while it goes on
);
CREATE INDEX IF NOT EXISTS maintenance_by_site ON maintenance_periods(site, start);
"""


def ensure_schema(store: Store) -> None:
    store.ensure_schema(SCHEMA)


def _has(store: Store, table: str) -> bool:
    return store.has_table(table)


def get_pause(store: Store, site: str) -> Pause | None:
    if not _has(store, "pauses"):
        return None
    row = store.conn.execute(
        "SELECT since, until, reason FROM pauses WHERE site=?", (site,)
    ).fetchone()
    return None if row is None else Pause(row[0], row[1], row[2])


def set_pause(store: Store, site: str, pause: Pause) -> None:
    ensure_schema(store)
    with store.transaction() as c:
        c.execute(
            "INSERT OR REPLACE INTO pauses(site, since, until, reason) VALUES (?,?,?,?)",
            (site, pause.since, pause.until, pause.reason),
        )


def delete_pause(store: Store, site: str) -> bool:
    if not _has(store, "pauses"):
        return False
    with store.transaction() as c:
        return c.execute("DELETE FROM pauses WHERE site=?", (site,)).rowcount > 0


def open_period(store: Store, site: str) -> tuple[int, str, str | None, float] | None:
    """(id, kind, reason, start) of the site's period in progress."""
    if not _has(store, "maintenance_periods"):
        return None
    row = store.conn.execute(
        "SELECT id, kind, reason, start FROM maintenance_periods WHERE site=? AND open=1"
        " ORDER BY id DESC LIMIT 1",
        (site,),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


def start_period(store: Store, site: str, kind: str, reason: str | None, ts: float) -> None:
    ensure_schema(store)
    with store.transaction() as c:
        c.execute("UPDATE maintenance_periods SET open=0 WHERE site=? AND open=1", (site,))
        c.execute(
            "INSERT INTO maintenance_periods(site, kind, reason, start, end, open)"
            " VALUES (?,?,?,?,?,1)",
            (site, kind, reason, ts, ts),
        )


def extend_period(store: Store, period_id: int, ts: float, *, close: bool = False) -> None:
    with store.transaction() as c:
        c.execute(
            "UPDATE maintenance_periods SET end=MAX(end, ?), open=? WHERE id=?",
            (ts, 0 if close else 1, period_id),
        )


def periods(
    store: Store, site: str, since: float = 0.0, until: float | None = None
) -> list[dict[str, Any]]:
    """The site's maintenance periods that overlap [since, until], oldest first."""
    if not _has(store, "maintenance_periods"):
        return []
    rows = store.conn.execute(
        "SELECT kind, reason, start, end, open FROM maintenance_periods WHERE site=? AND end>=?"
        " AND start<=? ORDER BY start",
        (site, since, until if until is not None else float("inf")),
    ).fetchall()
    return [
        {"kind": r[0], "reason": r[1], "start": r[2], "end": r[3], "ongoing": bool(r[4])}
        for r in rows
    ]
