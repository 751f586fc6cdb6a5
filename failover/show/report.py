"""`failover report`: what happened, as evidence a person can send to a provider.

Each incident becomes a timeline (first failed probe, declared down, each step of the
run that moved the site, the moment every authoritative server served the standby,
recovery) with the user-facing downtime and what the probes saw; each endpoint gets a
chart of its availability and latency over the period and its uptime per calendar month
(UTC) against a target such as 99.9 %, counting only the time the agent was watching with
a working network of its own, and saying whether the month can still meet the target.

`build_report()` reads the state and returns plain data (the JSON format);
`render_markdown()` formats it here, `report_html.render_html()` as a page with charts;
the arithmetic of uptime is in uptime.py, the charts in charts.py (both pure).
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from failover.humanize import duration, local_time
from failover.show.uptime import (
    Interval,
    month_verdict,
    months_between,
    round_target,
    subtract,
    watched_intervals,
)

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.runs.model import Run
    from failover.store import Store

CHART_BUCKETS = 240  # columns of a timeline chart


def build_report(
    loaded: LoadedConfig,
    store: Store,
    site: str | None = None,
    since: float = 0.0,
    target: float = 0.999,
    now: float | None = None,
    charts: bool = True,
) -> dict[str, Any]:
    from failover.maintenance import journal as maintenance
    from failover.runs import journal

    now = now or time.time()
    config = loaded.config
    names = [site] if site else list(config.sites)
    has_runs = journal.has_runs(store)
    rounds = store.round_network(since)
    start_at = since or (rounds[0][0] if rounds else now)
    out: dict[str, Any] = {
        "generated": now,
        "since": start_at,
        "target": round_target(target),
        "timezone": time.strftime("%Z", time.localtime(now)) or "local",
        "watcher": watcher_label(loaded.watcher),
        "sites": {},
    }
    for name in names:
        s = config.sites[name]
        # maintenance counts neither as up nor as down: it is not watched time
        periods = maintenance.periods(store, name, since)
        watched = subtract(
            watched_intervals(rounds, s.policy.interval),
            [Interval(p["start"], now if p["ongoing"] else p["end"]) for p in periods],
        )
        site_runs = journal.runs(store, name, since) if has_runs else []
        incidents = [
            _incident(store, name, dict(row), site_runs, now, out["watcher"])
            for row in store.incidents(name, since)
        ]
        if config.coordination is not None:  # which watchers saw what, when the group decided
            from failover.coordination.show import incident_events as group_events

            for inc in incidents:
                end = inc["recovered"] or now
                inc["group"] = group_events(store, name, inc["endpoint"], inc["first_failure"], end)
        if charts:
            for inc in incidents:
                end = inc["recovered"] or now
                pad = max(60.0, 0.2 * (end - inc["first_failure"]))
                inc["timeline"] = timeline_data(
                    store, name, inc["endpoint"], s.checks[0].label,
                    max(start_at, inc["first_failure"] - pad), min(now, end + pad), [inc],
                )  # fmt: skip
        endpoints: dict[str, Any] = {}
        for ep in s.endpoints:
            down = [
                Interval(i["first_failure"], i["recovered"] or now)
                for i in incidents
                if i["endpoint"] == ep
            ]
            months = []
            for bounds in months_between(start_at, now):
                v = month_verdict(down, watched, bounds, now, out["target"], since=start_at)
                months.append(
                    {
                        "month": datetime.fromtimestamp(bounds[0], UTC).strftime("%Y-%m"),
                        "watched_seconds": round(v.watched, 1),
                        "down_seconds": round(v.down, 1),
                        "unwatched_seconds": round(v.unwatched, 1),
                        "uptime": None if v.uptime is None else round(v.uptime, 6),
                        "meets_target": v.meets_target,
                        "allowed_down_seconds": round(v.allowed_down, 1),
                        "allowance_left_seconds": round(v.allowance_left, 1),
                        "month_outcome": v.outcome,
                        "month_verdict": v.sentence,
                    }
                )
            entry: dict[str, Any] = {"address": s.endpoints[ep].address, "months": months}
            if charts:
                entry["timeline"] = timeline_data(
                    store, name, ep, s.checks[0].label, start_at, now, incidents
                )
            endpoints[ep] = entry
        out["sites"][name] = {
            "hostname": s.hostname,
            "incidents": incidents,
            "endpoints": endpoints,
            "runs": [r.to_dict() for r in site_runs],
            "drills": _drills(loaded, store, name, since, target) if has_runs else None,
            "maintenance": periods,
        }
    return out


def _drills(
    loaded: LoadedConfig, store: Store, site: str, since: float, target: float
) -> dict[str, Any] | None:
    """The site's drills with RTO and RPO, the trend, and what an outage costs."""
    from failover.runs.drill import drill_report

    data = drill_report(loaded, store, site, since, target)
    return data if data["drills"] or loaded.config.sites[site].failover.drill else None


def _incident(
    store: Store, site: str, row: dict[str, Any], site_runs: list[Run], now: float, watcher: str
) -> dict[str, Any]:
    end = row["recovered"] or now
    inc: dict[str, Any] = {
        "endpoint": row["endpoint"],
        "first_failure": row["first_failure"],
        "declared_down": row["declared_down"],
        "recovered": row["recovered"],
        "ongoing": row["recovered"] is None,
        "outage_seconds": end - row["first_failure"],
        "evidence": evidence(store, site, row["endpoint"], row["first_failure"], end, watcher),
        "runs": [],
        "user_facing_downtime": None,
    }
    for run in site_runs:
        if run.kind == "drill":
            continue  # rehearsals: listed under the site's drills
        if run.source != row["endpoint"] or not (row["first_failure"] <= run.created <= end + 1):
            continue
        inc["runs"].append(
            {
                "id": run.id,
                "kind": run.kind,
                "trigger": run.trigger,
                "target": run.target,
                "status": run.status,
                "created": run.created,
                "finished": run.finished,
                "steps": [
                    {k: st[k] for k in ("name", "status", "started", "finished", "detail")}
                    for st in run.steps
                ],
            }
        )
        served = next(
            (
                st["finished"]
                for st in run.steps
                if st["name"] == "verify_dns" and st["status"] == "done"
            ),
            None,
        )
        if served is None and run.status == "done":
            served = next((st["finished"] for st in run.steps if st["name"] == "activate"), None)
        if served is not None:
            inc["standby_serving"] = served
            inc["user_facing_downtime"] = served - row["first_failure"]
    if inc["user_facing_downtime"] is None and row["recovered"] is not None:
        inc["user_facing_downtime"] = row["recovered"] - row["first_failure"]
    inc["events"] = incident_events(inc)
    return inc


def watcher_label(name: str | None) -> str:
    """Where the probes ran from: the machine, and under coordination the watcher's name in
    the group (several watchers on one host each tell their own story)."""
    host = socket.gethostname()
    return f"watcher {name} on {host}" if name else host


def evidence(
    store: Store, site: str, endpoint: str, start: float, end: float, watcher: str
) -> dict[str, Any]:
    """What a provider's support asks for: the first failed probe, from where, what the
    probes saw (grouped), and that the watcher's own network was fine meanwhile."""
    rows = store.failed_probes(site, endpoint, start, end)
    rounds, network_ok = store.round_counts(start, end)
    out: dict[str, Any] = {
        "failed_probes": len(rows),
        "watcher": watcher,
        "rounds": rounds,
        "rounds_network_ok": network_ok,
    }
    if not rows:
        return out
    out["first"] = {
        "ts": rows[0]["ts"],
        "check": rows[0]["check_name"],
        "detail": rows[0]["detail"],
    }
    out["last"] = {
        "ts": rows[-1]["ts"],
        "check": rows[-1]["check_name"],
        "detail": rows[-1]["detail"],
    }
    out["seen"] = [
        {"check": r["check_name"], "detail": r["detail"], "count": r["n"], "first": r["first"],
         "last": r["last"]}
        for r in store.failure_details(site, endpoint, start, end)
    ]  # fmt: skip
    return out


def incident_events(inc: dict[str, Any]) -> list[dict[str, Any]]:
    """The incident's timeline, oldest first: {ts, kind, text}."""
    first = inc["evidence"].get("first")
    events = [
        {
            "ts": inc["first_failure"],
            "kind": "first_failure",
            "text": "first failed probe"
            + (f" ({first['check']}: {first['detail']})" if first else ""),
        },
        {"ts": inc["declared_down"], "kind": "down", "text": f"{inc['endpoint']} declared down"},
    ]
    for run in inc["runs"]:
        events.append(
            {
                "ts": run["created"],
                "kind": "run",
                "text": f"run #{run['id']} {run['kind']} to {run['target']} started "
                f"({run['trigger']})",
            }
        )
        for st in run["steps"]:
            if st["status"] == "skipped" or st["finished"] is None:
                continue
            events.append(
                {
                    "ts": st["finished"],
                    "kind": "step",
                    "text": f"step {st['name']} {st['status']}"
                    + (f": {st['detail']}" if st["detail"] else ""),
                }
            )
    if inc.get("standby_serving"):
        events.append(
            {
                "ts": inc["standby_serving"],
                "kind": "serving",
                "text": "every authoritative nameserver serves the standby",
            }
        )
    if inc["recovered"]:
        events.append(
            {"ts": inc["recovered"], "kind": "recovered", "text": f"{inc['endpoint']} recovered"}
        )
    return sorted(events, key=lambda e: e["ts"])


def timeline_data(
    store: Store,
    site: str,
    endpoint: str,
    check: str,
    start: float,
    end: float,
    incidents: list[dict[str, Any]],
    buckets: int = CHART_BUCKETS,
) -> dict[str, Any]:
    """The chart's data for one endpoint over [start, end]: buckets of rounds and of the
    first check's latency, the outages as bands, and the steps of their incidents."""
    width = max((end - start) / buckets, 1.0)
    rows = {r["bucket"]: r for r in store.observation_buckets(site, endpoint, start, end, width)}
    lat = {r["bucket"]: r for r in store.latency_buckets(site, endpoint, check, start, end, width)}
    out = []
    for b in sorted(set(rows) | set(lat)):
        r, la = rows.get(b), lat.get(b)
        out.append(
            {
                "start": start + b * width,
                "end": start + (b + 1) * width,
                "rounds": int(r["rounds"]) if r else 0,
                "failed": int(r["failed"]) if r else 0,
                "inconclusive": int(r["inconclusive"]) if r else 0,
                "latency_avg": None if la is None else round(la["avg_ms"], 3),
                "latency_max": None if la is None else round(la["max_ms"], 3),
            }
        )
    bands, marks = [], []
    for inc in incidents:
        if inc["endpoint"] != endpoint:
            continue
        bands.append(
            {
                "start": inc["first_failure"],
                "end": inc["recovered"] or end,
                "kind": "outage",
                "ongoing": inc["ongoing"],
            }
        )
        marks += [{"ts": e["ts"], "label": e["text"]} for e in inc["events"]]
    return {
        "start": start,
        "end": end,
        "check": check,
        "bucket_seconds": width,
        "buckets": out,
        "bands": bands,
        "marks": marks,
    }


def render_markdown(report: dict[str, Any]) -> str:
    target = report["target"]
    lines = [
        f"# Availability report ({_day(report['since'])} to {_day(report['generated'])})",
        "",
        f"Times are the watcher's local time ({report.get('timezone', 'local')}); months are "
        f"UTC calendar months. Target: {target * 100:g}% per month. Probed from "
        f"{report.get('watcher', '-')}.",
        "",
    ]
    for name, site in report["sites"].items():
        lines += [f"## {name} ({site['hostname']})", ""]
        if not site["incidents"]:
            lines += ["No incidents.", ""]
        for n, inc in enumerate(site["incidents"], 1):
            state = "ongoing" if inc["ongoing"] else f"{duration(inc['outage_seconds'])}"
            lines += [f"### Incident {n}: {inc['endpoint']} down ({state})", ""]
            lines += ["| time | event |", "|---|---|"]
            events = sorted([*inc["events"], *inc.get("group", [])], key=lambda e: e["ts"])
            lines += [f"| {local_time(e['ts'])} | {e['text']} |" for e in events]
            lines.append("")
            lines += _evidence_lines(inc)
            lines.append("")
        if site.get("drills"):
            lines += _drills_markdown(name, site["drills"])
        if site.get("maintenance"):
            lines += ["### Maintenance (not counted in uptime)", ""]
            for p in site["maintenance"]:
                end = "ongoing" if p["ongoing"] else _ts(p["end"])
                lines.append(
                    f"- {_ts(p['start'])} to {end}: {p['kind']}"
                    + (f" ({p['reason']})" if p["reason"] else "")
                )
            lines.append("")
        lines += [
            "### Uptime per month",
            "",
            "Uptime is over the time the agent watched with a working network. The target "
            f"allows {(1 - target) * 100:g}% of the whole month down; the last column says "
            "whether the month can still meet it.",
            "",
            "| endpoint | month | watched | down | uptime (watched) | within target (watched) "
            "| down allowed (month) | allowance left | month |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for ep, data in site["endpoints"].items():
            for m in data["months"]:
                up = "-" if m["uptime"] is None else f"{m['uptime'] * 100:.3f}%"
                met = "-" if m["meets_target"] is None else ("yes" if m["meets_target"] else "NO")
                left = m["allowance_left_seconds"]
                left_text = duration(left) if left >= 0 else f"exceeded by {duration(-left)}"
                lines.append(
                    f"| {ep} ({data['address']}) | {m['month']} | "
                    f"{duration(m['watched_seconds'])} | {duration(m['down_seconds'])} "
                    f"| {up} | {met} | {duration(m['allowed_down_seconds'])} | {left_text} "
                    f"| {m['month_verdict']} |"
                )
        lines.append("")
    return "\n".join(lines)


def _evidence_lines(inc: dict[str, Any]) -> list[str]:
    ev = inc["evidence"]
    lines = [
        f"- failed probes recorded: {ev.get('failed_probes', 0)}, from {ev.get('watcher', '-')}"
        f"; the watcher's own network was fine in {ev.get('rounds_network_ok', 0)} of "
        f"{ev.get('rounds', 0)} rounds (canaries passed)",
        f"- outage of {inc['endpoint']}: {duration(inc['outage_seconds'])}"
        + (" (ongoing)" if inc["ongoing"] else ""),
    ]
    if inc["user_facing_downtime"] is not None:
        lines.append(f"- user-facing downtime: {duration(inc['user_facing_downtime'])}")
    for seen in ev.get("seen", []):
        lines.append(
            f"- {seen['check']}: {seen['detail']} ({seen['count']} time(s), "
            f"{local_time(seen['first'])} to {local_time(seen['last'])})"
        )
    return lines


def _drills_markdown(name: str, drills: dict[str, Any]) -> list[str]:
    from failover.runs.drill_rules import compact

    def span(value: float | None) -> str:
        return "-" if value is None else compact(value)

    lines = ["### Drills", ""]
    if drills.get("statement"):
        statement = drills["statement"]
        lines += [statement[0].upper() + statement[1:] + ".", ""]
    for label, key in (("RTO", "rto_trend"), ("RPO", "rpo_trend")):
        t = drills.get(key)
        if t:
            lines.append(
                f"- {label} trend over the last {t['count']} passed drills: {t['direction']} "
                f"(last {span(t['last'])} against a median of {span(t['median_before'])} "
                f"before; range {span(t['min'])} to {span(t['max'])})"
            )
    if not drills["drills"]:
        lines += [f"No drill yet: run `failover drill {name}`.", ""]
        return lines
    if lines[-1] != "":
        lines.append("")
    lines += [
        "| time (UTC) | drill | onto | result | RTO | RPO | what failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in drills["drills"][-20:]:
        failed = ""
        if d["result"] == "failed":
            failed = f"{d['failed_step']}: {(d['output'] or '')[:120]}"
        elif d["result"] == "abandoned":
            failed = d["reason"] or ""
        lines.append(
            f"| {_ts(d['created'])} | #{d['id']} ({d['trigger']}) | {d['target']} | "
            f"{d['result']} | {span(d['rto'])} | {span(d['rpo'])} | {failed.replace('|', '/')} |"
        )
    lines.append("")
    return lines


def _ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))
