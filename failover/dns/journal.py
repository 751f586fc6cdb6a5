"""The DNS area's tables in the state: each switch, its record changes (old values kept,
so that a switch can be undone exactly), and the records as the providers last showed them
(for `status`, without asking the providers again).

The only module of failover/dns/ that runs SQL; everything else calls these functions.
A switch is journaled before anything is sent and its outcome recorded after, so that a
process stopped in between leaves 'pending' rows that the next switch settles.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from providers.dns.base import RecordChange, RecordKey, RecordSet

if TYPE_CHECKING:
    from failover.dns.plan import DnsPlan
    from failover.store import Store

DNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS dns_switches (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    site TEXT NOT NULL,
    provider TEXT NOT NULL,
    zone TEXT NOT NULL,
    from_endpoint TEXT,          -- NULL: the records held no (single) endpoint's values
    to_endpoint TEXT NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,       -- pending, applied, failed, partial, unknown, noop
    synced INTEGER,              -- the provider reported the change done (NULL: not asked)
    verified INTEGER,            -- every authoritative server serves the new values
    detail TEXT
);
CREATE INDEX IF NOT EXISTS dns_switches_by_site ON dns_switches(site, started);
CREATE TABLE IF NOT EXISTS dns_changes (
    id INTEGER PRIMARY KEY,
    switch_id INTEGER NOT NULL,
    zone TEXT NOT NULL,
    name TEXT NOT NULL,
    rtype TEXT NOT NULL,
    old_values TEXT,             -- JSON list; NULL: the record did not exist
    old_ttl INTEGER,
    new_values TEXT NOT NULL,    -- JSON list
    new_ttl INTEGER NOT NULL,
    outcome TEXT NOT NULL,       -- pending, applied, not_applied, unknown
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dns_changes_by_switch ON dns_changes(switch_id);
CREATE TABLE IF NOT EXISTS dns_observed (
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    rtype TEXT NOT NULL,
    provider_values TEXT,        -- JSON list; NULL: no such record at the provider
    ttl INTEGER,
    ts REAL NOT NULL,
    PRIMARY KEY (site, name, rtype)
);
"""


def ensure_dns_schema(store: Store) -> None:
    store.ensure_schema(DNS_SCHEMA)


# --- switches and their record changes -------------------------------------------------------


def journal_start(store: Store, plan: DnsPlan, now: float) -> tuple[int, dict[RecordKey, int]]:
    """Journal a switch and each record change it will make as 'pending' (a noop plan is
    journaled finished, as 'noop'). Returns the switch's id and each change's id."""
    with store.transaction() as c:
        cur = c.execute(
            "INSERT INTO dns_switches(started, finished, site, provider, zone, from_endpoint,"
            " to_endpoint, forced, outcome, detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                now,
                None if plan.pending else now,
                plan.site,
                plan.provider,
                plan.zone,
                plan.from_endpoint,
                plan.target,
                int(plan.forced),
                "pending" if plan.pending else "noop",
                "; ".join(plan.reasons) or None,
            ),
        )
        switch_id = int(cur.lastrowid or 0)
        ids: dict[RecordKey, int] = {}
        for r in plan.pending:
            row = c.execute(
                "INSERT INTO dns_changes(switch_id, zone, name, rtype, old_values, old_ttl,"
                " new_values, new_ttl, outcome, ts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    switch_id,
                    r.key.zone,
                    r.key.name,
                    r.key.rtype,
                    None if r.old is None else json.dumps(list(r.old.values)),
                    None if r.old is None else r.old.ttl,
                    json.dumps(list(r.new.values)),
                    r.new.ttl,
                    "pending",
                    now,
                ),
            )
            ids[r.key] = int(row.lastrowid or 0)
    return switch_id, ids


def journal_outcomes(
    store: Store,
    switch_id: int,
    ids: Mapping[RecordKey, int],
    outcomes: Mapping[RecordKey, str],
    outcome: str,
    detail: str | None,
    now: float,
) -> None:
    """Record each change's outcome (a change missing from `outcomes`: unknown) and the
    switch's, which finishes it."""
    with store.transaction() as c:
        for key, change_id in ids.items():
            c.execute(
                "UPDATE dns_changes SET outcome=?, ts=? WHERE id=?",
                (outcomes.get(key, "unknown"), now, change_id),
            )
        c.execute(
            "UPDATE dns_switches SET outcome=?, finished=?, detail=COALESCE(?, detail) WHERE id=?",
            (outcome, now, detail, switch_id),
        )


def record_synced(store: Store, switch_id: int, synced: bool, detail: str | None) -> None:
    """Whether the provider reported the switch's change done."""
    with store.transaction() as c:
        c.execute(
            "UPDATE dns_switches SET synced=?, detail=COALESCE(?, detail) WHERE id=?",
            (int(synced), detail, switch_id),
        )


def record_verified(store: Store, switch_id: int | None, verified: bool) -> None:
    """Whether every authoritative server served the switch's values in time."""
    with store.transaction() as c:
        c.execute("UPDATE dns_switches SET verified=? WHERE id=?", (int(verified), switch_id))


def change_ids(store: Store, switch_id: int) -> dict[RecordKey, int]:
    """Each record change of a switch by its key (to record outcomes found later)."""
    row = store.conn.execute("SELECT zone FROM dns_switches WHERE id=?", (switch_id,)).fetchone()
    if row is None:
        return {}
    return {
        RecordKey(row["zone"], c["name"], c["rtype"]): int(c["id"])
        for c in store.conn.execute(
            "SELECT id, name, rtype FROM dns_changes WHERE switch_id=?", (switch_id,)
        )
    }


@dataclass(frozen=True)
class PendingSwitch:
    """A switch journaled but never finished (the process stopped in between)."""

    switch_id: int
    zone: str
    changes: dict[int, RecordChange]
    """Its changes still 'pending', by their id."""


def pending_switches(store: Store, site: str) -> list[PendingSwitch]:
    """The site's switches still 'pending', oldest first."""
    rows = store.conn.execute(
        "SELECT id, zone FROM dns_switches WHERE site=? AND outcome='pending' ORDER BY id",
        (site,),
    ).fetchall()
    out = []
    for row in rows:
        changes: dict[int, RecordChange] = {}
        for c in store.conn.execute(
            "SELECT id, name, rtype, old_values, old_ttl, new_values, new_ttl FROM dns_changes"
            " WHERE switch_id=? AND outcome='pending'",
            (row["id"],),
        ).fetchall():
            key = RecordKey(row["zone"], c["name"], c["rtype"])
            old = (
                None
                if c["old_values"] is None
                else RecordSet(key, tuple(json.loads(c["old_values"])), c["old_ttl"])
            )
            new = RecordSet(key, tuple(json.loads(c["new_values"])), c["new_ttl"])
            changes[int(c["id"])] = RecordChange(old, new)
        out.append(PendingSwitch(int(row["id"]), row["zone"], changes))
    return out


def last_switch(store: Store, site: str, *, changed_only: bool = False) -> dict[str, Any] | None:
    """The newest journaled switch of a site, with its record changes (old values kept)."""
    try:
        wanted = "IN ('applied', 'partial')" if changed_only else "!= 'noop'"
        row = store.conn.execute(
            f"SELECT * FROM dns_switches WHERE site=? AND outcome {wanted}"
            " ORDER BY id DESC LIMIT 1",
            (site,),
        ).fetchone()
    except sqlite3.OperationalError:  # no switch journaled yet: no table
        return None
    if row is None:
        return None
    out = dict(row)
    out["changes"] = [
        {
            **dict(c),
            "old_values": None if c["old_values"] is None else json.loads(c["old_values"]),
            "new_values": json.loads(c["new_values"]),
        }
        for c in store.conn.execute(
            "SELECT name, rtype, old_values, old_ttl, new_values, new_ttl, outcome FROM dns_changes"
            " WHERE switch_id=? ORDER BY id",
            (row["id"],),
        )
    ]
    return out


def last_switch_changes(store: Store, site: str) -> tuple[list[RecordChange], str | None]:
    """The applied record changes of the site's last switch that changed something, and the
    endpoint it left."""
    last = last_switch(store, site, changed_only=True)
    if last is None:
        return [], None
    changes = []
    for c in last["changes"]:
        if c["outcome"] != "applied":
            continue
        key = RecordKey(last["zone"], c["name"], c["rtype"])
        old = (
            None
            if c["old_values"] is None
            else RecordSet(key, tuple(c["old_values"]), c["old_ttl"])
        )
        changes.append(RecordChange(old, RecordSet(key, tuple(c["new_values"]), c["new_ttl"])))
    return changes, last["from_endpoint"]


# --- the records as the providers last showed them -------------------------------------------


def record_observed(
    store: Store,
    site: str,
    recordsets: Iterable[RecordSet | tuple[RecordKey, None]],
    now: float | None = None,
) -> None:
    """Remember what the provider holds (for status, without asking the provider again)."""
    ensure_dns_schema(store)
    ts = time.time() if now is None else now
    with store.transaction() as c:
        for item in recordsets:
            if isinstance(item, RecordSet):
                c.execute(
                    "INSERT OR REPLACE INTO dns_observed(site, name, rtype, provider_values, ttl, ts)"
                    " VALUES (?,?,?,?,?,?)",
                    (
                        site,
                        item.key.name,
                        item.key.rtype,
                        json.dumps(list(item.values)),
                        item.ttl,
                        ts,
                    ),
                )
            else:
                key = item[0]
                c.execute(
                    "INSERT OR REPLACE INTO dns_observed(site, name, rtype, provider_values, ttl, ts)"
                    " VALUES (?,?,?,NULL,NULL,?)",
                    (site, key.name, key.rtype, ts),
                )


@dataclass(frozen=True)
class Observed:
    values: tuple[str, ...] | None
    """None: the provider had no such record."""
    ttl: int | None
    ts: float


def observed(store: Store, site: str) -> dict[tuple[str, str], Observed]:
    """The site's records as last observed at the provider, by (name, type)."""
    try:
        rows = store.conn.execute(
            "SELECT name, rtype, provider_values, ttl, ts FROM dns_observed WHERE site=?",
            (site,),
        ).fetchall()
    except sqlite3.OperationalError:  # nothing observed yet: no table
        return {}
    return {
        (r[0], r[1]): Observed(None if r[2] is None else tuple(json.loads(r[2])), r[3], r[4])
        for r in rows
    }
