"""Drills decided and measured: PURE (no store, no clock, no I/O).

- `drill_due()`: is a scheduled drill due (every / at, from the last drill's start);
  `drill_blocker()`: what keeps one from starting now (an outage, an open run, a backup,
  the standby being the active endpoint, the agent's own network).
- `drill_rto()`, `drill_rpo()`, `summarize()`: what a journaled drill measured;
  `trend()`: how the last drills compare; `downtime_sentence()`: what an outage costs
  with the configured `down_after` and the measured RTO, next to the uptime target.

Definitions (the README's "Drills" says the same):
- RPO: the age of the snapshot the drill restored (or found on a warm standby) when the
  drill started.
- RTO: from the drill's start to the standby passing the site's checks, less the time of the
  warm standby's file comparison (a failover does not do it). A drill resumed after an
  interruption counts the time of its steps, not the gap.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from failover.humanize import duration
from failover.runs.model import DRILL_FLUNKED, DRILL_PASSED, Run

if TYPE_CHECKING:
    from failover.config.models import Site

# The steps of a drill that a real failover takes too (up to "the standby passes its checks").
RTO_STEPS = ("preflight", "restore", "after_restore", "recheck")
DRILL_ONLY_STEPS = ("verify_current",)
MONTH = 30 * 86400.0  # "a month" in the downtime sentence
TREND_WINDOW = 10  # drills compared by trend()
TREND_MARGIN = 0.10  # a change within 10 % of the median is "steady"
BUSY_STATES = ("suspect", "down", "recovering")


# --- the schedule ----------------------------------------------------------------------------


def drill_target(site: Site) -> str | None:
    """The endpoint a drill of `site` goes onto: `drill.to`, else the first endpoint that is
    not the site's initial active one (None when the site has one endpoint)."""
    drill = site.failover.drill
    if drill is not None and drill.to is not None:
        return drill.to
    return next((name for name in site.endpoints if name != site.initial_active), None)


def _slot(at: str, ts: float) -> float:
    """The latest time of day `at` (HH:MM, local) at or before ts."""
    current = datetime.fromtimestamp(ts)
    hour, minute = (int(x) for x in at.split(":"))
    candidate = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate > current:
        candidate -= timedelta(days=1)
    return candidate.timestamp()


def drill_due(
    every: float,
    at: str | None,
    last_start: float | None,
    first_seen: float | None,
    now: float,
) -> bool:
    """Is a scheduled drill due now?

    Without `at`: when no drill ran yet, or `every` has passed since the last one started.
    With `at`: at the first `at` once `every` has passed since the last drill started, less
    a little slack (local days are 23 or 25 hours long around a DST change, and a drill
    starts a little after its `at`); a missed `at` (the agent was down) is caught up when it
    comes back. The first drill: at the first `at` after the schedule was first seen
    (`first_seen`). Drills that were abandoned do not count as the last one (the caller
    passes the last drill that ran to its end, passed or flunked)."""
    if at is None:
        return last_start is None or now - last_start >= every
    slot = _slot(at, now)
    if last_start is None:
        return first_seen is None or slot >= first_seen
    slack = min(2 * 3600.0, every / 2)
    return slot >= last_start + every - slack


def drill_blocker(
    *,
    target: str | None,
    active: str,
    active_status: str,
    open_run: tuple[int, str] | None,
    backup_busy: bool,
    network_ok: bool,
) -> str | None:
    """Why a drill must not start now, or None. open_run: (id, kind) of the site's open run."""
    if target is None:
        return "the site has no other endpoint to drill onto"
    if target == active:
        return f"{target} is the active endpoint"
    if open_run is not None:
        return f"run #{open_run[0]} ({open_run[1]}) is open"
    if active_status in BUSY_STATES:
        return f"the active endpoint {active} is {active_status}"
    if not network_ok:
        return "the agent's own network is down"
    if backup_busy:
        return "a backup of the site is due or in progress"
    return None


def overdue(
    every: float | None, last_pass: float | None, first_seen: float | None, now: float
) -> bool:
    """No drill passed within 2 x every (counted from when the schedule was first seen
    when no drill passed yet; always when nothing is known)."""
    if every is None:
        return False
    reference = last_pass if last_pass is not None else first_seen
    return reference is None or now - reference > 2 * every


def gives_way(active_status: str) -> bool:
    """A drill in progress is abandoned at once when the active endpoint goes down: the
    real failover needs the standby."""
    return active_status in ("down", "recovering")


# --- what a drill measured ---------------------------------------------------------------------


def _step(steps: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((s for s in steps if s["name"] == name), None)


def _took(step: Mapping[str, Any] | None) -> float:
    if step is None or step["status"] != "done":
        return 0.0
    if step["started"] is None or step["finished"] is None:
        return 0.0
    return max(0.0, float(step["finished"]) - float(step["started"]))


def drill_rto(steps: Sequence[Mapping[str, Any]], created: float, attempts: int) -> float | None:
    """Seconds from the drill's start to the standby passing the site's checks; None when
    it never passed them. See the module's docstring."""
    recheck = _step(steps, "recheck")
    if recheck is None or recheck["status"] != "done" or recheck["finished"] is None:
        return None
    drill_only = sum(_took(_step(steps, name)) for name in DRILL_ONLY_STEPS)
    if attempts <= 1:
        return max(0.0, float(recheck["finished"]) - created - drill_only)
    return sum(_took(_step(steps, name)) for name in RTO_STEPS)


def drill_rpo(created: float, snapshot_time: float | None) -> float | None:
    """The age of the snapshot when the drill started (None: no snapshot was involved)."""
    if snapshot_time is None:
        return None
    return max(0.0, created - snapshot_time)


def result_of(status: str) -> str:
    """passed, failed, abandoned or running."""
    return {DRILL_PASSED: "passed", DRILL_FLUNKED: "failed", "abandoned": "abandoned"}.get(
        status, "running"
    )


def summarize(run: Run) -> dict[str, Any]:
    """One drill as status and report show it: result, RTO, RPO, what failed, each step's
    time."""
    data: dict[str, Any] = {}
    for step in run.steps:
        data.update(step.get("data") or {})
    failed = next((s for s in run.steps if s["status"] == "failed"), None)
    return {
        "id": run.id,
        "site": run.site,
        "target": run.target,
        "trigger": run.trigger,
        "created": run.created,
        "finished": run.finished,
        "status": run.status,
        "result": result_of(run.status),
        "rto": drill_rto(run.steps, run.created, run.attempts),
        "rpo": drill_rpo(run.created, data.get("snapshot_time")),
        "snapshot": data.get("snapshot"),
        "failed_step": failed["name"] if failed else None,
        "output": failed["detail"] if failed else None,
        "reason": run.detail if run.status == "abandoned" else None,
        "steps": [
            {
                "name": s["name"],
                "status": s["status"],
                "seconds": round(float(s["finished"]) - float(s["started"]), 3)
                if s["started"] is not None and s["finished"] is not None
                else None,
                "detail": s["detail"],
            }
            for s in run.steps
        ],
    }


def trend(values: Sequence[float], window: int = TREND_WINDOW) -> dict[str, Any] | None:
    """The newest value (values are oldest first) against the median of the ones before it
    within the window: rising, falling (by more than TREND_MARGIN) or steady. None with
    fewer than two values."""
    recent = list(values)[-window:]
    if len(recent) < 2:
        return None
    last, before = recent[-1], recent[:-1]
    median = statistics.median(before)
    change = (last - median) / median if median > 0 else (0.0 if last == median else 1.0)
    direction = (
        "rising" if change > TREND_MARGIN else "falling" if change < -TREND_MARGIN else "steady"
    )
    return {
        "last": last,
        "median_before": median,
        "change": change,
        "direction": direction,
        "count": len(recent),
        "min": min(recent),
        "max": max(recent),
    }


def outage_cost(down_after: float, rto: float) -> float:
    """The downtime users should expect: the outage must last `down_after` to be declared,
    then the failover takes about the RTO."""
    return down_after + rto


def compact(seconds: float) -> str:
    """4.2s, 3m, 1m 40s, 2h, 1h 05m: humanize.duration without the zero tail, with tenths
    under 10 seconds."""
    if 0 < seconds < 9.95 and round(seconds, 1) != round(seconds):
        return f"{seconds:.1f}s"
    text = duration(seconds)
    for zero in (" 00s", " 00m", " 00h"):
        text = text.removesuffix(zero)
    return text


def about(seconds: float) -> str:
    """A rounded duration in words: 7 seconds, 5 minutes, 3 hours, 2 days."""
    seconds = max(0.0, seconds)
    for unit, size, limit in (
        ("second", 1, 90),
        ("minute", 60, 90 * 60),
        ("hour", 3600, 48 * 3600),
    ):
        if seconds < limit:
            n = max(1, round(seconds / size)) if seconds > 0 else 0
            return f"{n} {unit}{'' if n == 1 else 's'}"
    n = round(seconds / 86400)
    return f"{n} day{'' if n == 1 else 's'}"


def downtime_sentence(down_after: float, rto: float, target: float) -> str:
    """ "with down_after 3m and the last measured RTO of 1m 40s, an outage costs about
    5 minutes; the 99.9% target allows 43 minutes a month" (target as a fraction)."""
    allowed = (1 - target) * MONTH
    return (
        f"with down_after {compact(down_after)} and the last measured RTO of {compact(rto)}, "
        f"an outage costs about {about(outage_cost(down_after, rto))}; the "
        f"{target * 100:g}% target allows {about(allowed)} a month"
    )
