"""The runs tables: a run and its steps are journaled before anything is done, and each
step's start, end, outcome and details as it goes. The only module of the area with SQL.

A site never has two open runs (a unique partial index says so).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from failover.errors import UnsafePlan
from failover.runs.model import Run, RunPlan
from failover.runs.plan import resume_command

if TYPE_CHECKING:
    from failover.store import Store

RUNBOOK_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,          -- failover, failback, switch, migrate, drill
    trigger TEXT NOT NULL,       -- auto, manual or schedule (a drill)
    source TEXT NOT NULL,        -- the endpoint active when the run began
    target TEXT NOT NULL,
    status TEXT NOT NULL,        -- running, failed, done, abandoned, refused (at preflight);
                                 -- a drill: passed, flunked
    created REAL NOT NULL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL,       -- JSON: force, allow_stale, ...
    detail TEXT,
    owner INTEGER                -- pid of the process executing it (NULL: nobody)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_run_per_site ON runs(site)
    WHERE status IN ('running', 'failed');
CREATE INDEX IF NOT EXISTS runs_by_site ON runs(site, created);
CREATE TABLE IF NOT EXISTS run_steps (
    run_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,        -- pending, running, done, failed, skipped
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    data TEXT,                   -- JSON handed to later steps (snapshot id, ...)
    PRIMARY KEY (run_id, idx)
);
"""


def ensure_schema(store: Store) -> None:
    store.ensure_schema(RUNBOOK_SCHEMA)


def start_run(
    store: Store,
    plan: RunPlan,
    trigger: str,
    options: dict[str, Any] | None = None,
    now: float | None = None,
) -> Run:
    """Journal a new run and its steps. Raises UnsafePlan when the site has an open run."""
    ensure_schema(store)
    now = now or time.time()
    try:
        with store.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs(site, kind, trigger, source, target, status, created, options,"
                " owner) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    plan.site,
                    plan.kind,
                    trigger,
                    plan.source,
                    plan.target,
                    "running",
                    now,
                    json.dumps(options or {}),
                    os.getpid(),
                ),
            )
            run_id = int(cur.lastrowid or 0)
            c.executemany(
                "INSERT INTO run_steps(run_id, idx, name, title, status, detail)"
                " VALUES (?,?,?,?,?,?)",
                [
                    (run_id, i, s.name, s.title, "skipped" if s.skip else "pending", s.skip)
                    for i, s in enumerate(plan.steps)
                ],
            )
    except sqlite3.IntegrityError:
        existing = open_run(store, plan.site)
        raise UnsafePlan(
            f"site {plan.site} already has an open run"
            + (
                f" (#{existing.id}: {existing.kind} to {existing.target}, {existing.status})"
                if existing
                else ""
            ),
            hint=(
                f"resume it with `{resume_command(existing)}`, or "
                f"`failover runs abandon {existing.id}`"
            )
            if existing
            else None,
        ) from None
    run = get_run(store, run_id)
    assert run is not None
    return run


def get_run(store: Store, run_id: int) -> Run | None:
    ensure_schema(store)
    row = store.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    if row is None:
        return None
    steps = [
        dict(r)
        for r in store.conn.execute(
            "SELECT * FROM run_steps WHERE run_id=? ORDER BY idx", (run_id,)
        )
    ]
    for step in steps:
        step["data"] = json.loads(step["data"]) if step["data"] else {}
    return Run(
        row["id"],
        row["site"],
        row["kind"],
        row["trigger"],
        row["source"],
        row["target"],
        row["status"],
        row["created"],
        row["finished"],
        row["attempts"],
        json.loads(row["options"]),
        row["detail"],
        steps,
        row["owner"],
    )


def open_run(store: Store, site: str) -> Run | None:
    ensure_schema(store)
    row = store.conn.execute(
        "SELECT id FROM runs WHERE site=? AND status IN ('running','failed')", (site,)
    ).fetchone()
    return get_run(store, row[0]) if row else None


def runs(store: Store, site: str | None = None, since: float = 0.0) -> list[Run]:
    ensure_schema(store)
    query = "SELECT id FROM runs WHERE created >= ?"
    args: list[Any] = [since]
    if site:
        query += " AND site=?"
        args.append(site)
    return [
        r
        for (rid,) in store.conn.execute(query + " ORDER BY created", args)
        if (r := get_run(store, rid)) is not None
    ]


def set_options(store: Store, run_id: int, options: dict[str, Any]) -> None:
    update_run(store, run_id, options=json.dumps(options))


def abandon_run(store: Store, run_id: int, reason: str) -> bool:
    """Give up on an open run; False when it was no longer open (it ended meanwhile)."""
    with store.transaction() as c:
        cur = c.execute(
            "UPDATE runs SET status='abandoned', finished=?, detail=?, owner=NULL "
            "WHERE id=? AND status IN ('running','failed')",
            (time.time(), reason, run_id),
        )
    return cur.rowcount > 0


def close_run(store: Store, run_id: int, status: str, detail: str | None) -> bool:
    """End an open run with `status` (done, or a drill's passed/flunked); False when it was
    no longer open (abandoned meanwhile: that stays)."""
    with store.transaction() as c:
        cur = c.execute(
            "UPDATE runs SET status=?, finished=?, detail=?, owner=NULL "
            "WHERE id=? AND status IN ('running','failed')",
            (status, time.time(), detail, run_id),
        )
    return cur.rowcount > 0


def run_status(store: Store, run_id: int) -> str | None:
    row = store.conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
    return str(row[0]) if row else None


def last_drill_start(store: Store, site: str, statuses: tuple[str, ...]) -> float | None:
    """When the site's newest drill with one of `statuses` started (one query per round)."""
    marks = ",".join("?" for _ in statuses)
    row = store.conn.execute(
        f"SELECT MAX(created) FROM runs WHERE site=? AND kind='drill' AND status IN ({marks})",
        (site, *statuses),
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def drills(store: Store, site: str, limit: int = 50, since: float = 0.0) -> list[Run]:
    """The site's drills, newest first."""
    ensure_schema(store)
    rows = store.conn.execute(
        "SELECT id FROM runs WHERE site=? AND kind='drill' AND created >= ? "
        "ORDER BY created DESC, id DESC LIMIT ?",
        (site, since, limit),
    ).fetchall()
    return [r for (rid,) in rows if (r := get_run(store, rid)) is not None]


def update_step(store: Store, run_id: int, idx: int, **fields: Any) -> None:
    if "data" in fields:
        fields["data"] = json.dumps(fields["data"])
    sets = ", ".join(f"{k}=?" for k in fields)
    with store.transaction() as c:
        c.execute(
            f"UPDATE run_steps SET {sets} WHERE run_id=? AND idx=?", (*fields.values(), run_id, idx)
        )


def update_run(store: Store, run_id: int, **fields: Any) -> None:
    sets = ", ".join(f"{k}=?" for k in fields)
    with store.transaction() as c:
        c.execute(f"UPDATE runs SET {sets} WHERE id=?", (*fields.values(), run_id))


def last_run(store: Store, site: str) -> Run | None:
    """The site's newest run, whatever its status."""
    ensure_schema(store)
    row = store.conn.execute(
        "SELECT id FROM runs WHERE site=? ORDER BY id DESC LIMIT 1", (site,)
    ).fetchone()
    return get_run(store, row[0]) if row else None


def last_done_run(store: Store, site: str) -> Run | None:
    ensure_schema(store)
    row = store.conn.execute(
        "SELECT id FROM runs WHERE site=? AND status='done' ORDER BY finished DESC LIMIT 1",
        (site,),
    ).fetchone()
    return get_run(store, row[0]) if row else None


def has_runs(store: Store) -> bool:
    """A read-only store (status, report) may predate the runs tables."""
    return store.has_table("runs")
