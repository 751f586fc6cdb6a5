"""Runs as group facts: the leader records each run (and its steps, as they finish) in the
engine, so that a new leader resumes a run the old one started, from its first unfinished
step; every watcher mirrors the group's runs into its local journal, so that `status`,
`runs` and `report` tell the same story everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.runs import journal
from failover.runs.model import OPEN, Run, RunPlan, StepPlan

if TYPE_CHECKING:
    from failover.store import Store

# Steps that change the world for users: the leader renews its lease right before each.
IRREVERSIBLE = ("restore", "switch_dns", "activate")
STEP_FIELDS = (
    "idx",
    "name",
    "title",
    "status",
    "started",
    "finished",
    "attempts",
    "detail",
    "data",
)


def run_key(site: str) -> str:
    return f"sites/{site}/run"


def active_key(site: str) -> str:
    return f"sites/{site}/active"


def decision_key(site: str, epoch: int) -> str:
    return f"sites/{site}/decisions/{epoch}"


def record_of(run: Run, uid: str, epoch: int, watcher: str) -> dict[str, Any]:
    """The group's record of a run, as the watcher executing it sees it now."""
    return {
        "uid": uid,
        "site": run.site,
        "kind": run.kind,
        "trigger": run.trigger,
        "source": run.source,
        "target": run.target,
        "status": run.status,
        "created": run.created,
        "finished": run.finished,
        "attempts": run.attempts,
        "options": {k: v for k, v in run.options.items() if k != "group_run"},
        "detail": run.detail,
        "epoch": epoch,
        "by": watcher,
        "steps": [{k: s.get(k) for k in STEP_FIELDS} for s in run.steps],
    }


def is_open(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("status") in OPEN


def local_run(store: Store, site: str, uid: str) -> Run | None:
    for run in reversed(journal.runs(store, site)):
        if run.options.get("group_run") == uid:
            return run
    return None


def adopt(store: Store, record: dict[str, Any]) -> Run:
    """Make the local journal hold the group's run `record`: the same run (its uid), steps
    and outcome; another open local run of the site gives way to it."""
    journal.ensure_schema(store)
    site, uid = record["site"], record["uid"]
    mine = local_run(store, site, uid)
    current = journal.open_run(store, site)
    if current is not None and (mine is None or current.id != mine.id):
        journal.abandon_run(
            store,
            current.id,
            f"superseded by the group's run {uid[:8]} ({record['kind']} to {record['target']}, "
            f"epoch {record.get('epoch')}, {record.get('by')})",
        )
    if mine is None:
        plan = RunPlan(
            site,
            record["kind"],
            record["source"],
            record["target"],
            tuple(
                StepPlan(
                    s["name"], s["title"], s.get("detail") if s["status"] == "skipped" else None
                )
                for s in record["steps"]
            ),
        )
        options = {**(record.get("options") or {}), "group_run": uid}
        mine = journal.start_run(store, plan, record["trigger"], options, now=record["created"])
    for step in record["steps"]:
        if step["status"] == "skipped":
            continue
        journal.update_step(
            store,
            mine.id,
            int(step["idx"]),
            status=step["status"],
            started=step.get("started"),
            finished=step.get("finished"),
            attempts=int(step.get("attempts") or 0),
            detail=step.get("detail"),
            data=step.get("data") or {},
        )
    journal.update_run(
        store,
        mine.id,
        status=record["status"],
        attempts=int(record.get("attempts") or 0),
        finished=record.get("finished"),
        detail=record.get("detail"),
        owner=None,
    )
    adopted = journal.get_run(store, mine.id)
    assert adopted is not None
    return adopted


def same_progress(run: Run, record: dict[str, Any]) -> bool:
    """The local run already holds what the record says."""
    if run.status != record.get("status"):
        return False
    ours = [(s["name"], s["status"]) for s in run.steps]
    theirs = [(s["name"], s["status"]) for s in record.get("steps") or []]
    return ours == theirs
