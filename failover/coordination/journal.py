"""What a watcher keeps locally about its group: the events it saw (each watcher's verdict
changing, the group deciding, the leader changing, the engine lost and back), for `report`
timelines; and its memory between rounds (sequence number, what it saw of the others,
its lease), so that cron runs and restarts carry on where the last process stopped.
The only module of the area with SQL."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS group_events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    site TEXT NOT NULL,          -- '' for the group as a whole (leader, engine)
    endpoint TEXT NOT NULL,      -- '' likewise
    kind TEXT NOT NULL,          -- watcher, group, leader, engine
    detail TEXT NOT NULL         -- JSON
);
CREATE INDEX IF NOT EXISTS group_events_by_site ON group_events(site, ts);
"""

STATE_KEY = "coordination:state"
VIEW_KEY = "coordination:view"


def ensure_schema(store: Store) -> None:
    store.ensure_schema(SCHEMA)


def add_events(
    store: Store, events: list[tuple[str, str, str, dict[str, Any]]], ts: float | None = None
) -> None:
    if not events:
        return
    ensure_schema(store)
    now = ts or time.time()
    with store.transaction() as c:
        c.executemany(
            "INSERT INTO group_events(ts, site, endpoint, kind, detail) VALUES (?,?,?,?,?)",
            [(now, site, ep, kind, json.dumps(detail)) for site, ep, kind, detail in events],
        )


def events(
    store: Store, site: str | None = None, since: float = 0.0, until: float | None = None
) -> list[dict[str, Any]]:
    if not store.has_table("group_events"):
        return []
    query = "SELECT ts, site, endpoint, kind, detail FROM group_events WHERE ts >= ? AND ts <= ?"
    args: list[Any] = [since, until if until is not None else time.time() + 1]
    if site is not None:
        query += " AND site IN (?, '')"
        args.append(site)
    return [
        {"ts": r[0], "site": r[1], "endpoint": r[2], "kind": r[3], **json.loads(r[4])}
        for r in store.conn.execute(query + " ORDER BY ts, id", args)
    ]


def load_state(store: Store) -> dict[str, Any]:
    raw = store.get_meta(STATE_KEY)
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def save_state(store: Store, state: dict[str, Any]) -> None:
    store.set_meta(STATE_KEY, json.dumps(state))


def load_view(store: Store) -> dict[str, Any] | None:
    raw = store.get_meta(VIEW_KEY)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def save_view(store: Store, view: dict[str, Any]) -> None:
    store.set_meta(VIEW_KEY, json.dumps(view))
