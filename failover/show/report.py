"""`failover report`: what happened, as evidence a person can send to a provider.

Each incident becomes a timeline (first failed probe, declared down, each step of the
run that moved the site, the moment every authoritative server served the standby,
recovery) with the user-facing downtime; each endpoint gets its uptime per calendar month
against a target such as 99.9 %, counting only the time the agent was watching with a
working network of its own.

`build_report()` reads the state and returns plain data; `render_markdown()` formats it;
the arithmetic of uptime is in uptime.py (pure).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from failover.humanize import duration
from failover.show.uptime import Interval, months_between, uptime, watched_intervals

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.store import Store


def build_report(
    loaded: LoadedConfig,
    store: Store,
    site: str | None = None,
    since: float = 0.0,
    target: float = 0.999,
    now: float | None = None,
) -> dict[str, Any]:
    from failover.runs import journal

    now = now or time.time()
    config = loaded.config
    names = [site] if site else list(config.sites)
    has_runs = journal.has_runs(store)
    rounds = store.round_network(since)
    out: dict[str, Any] = {
        "generated": now,
        "since": since or (rounds[0][0] if rounds else now),
        "target": target,
        "sites": {},
    }
    for name in names:
        s = config.sites[name]
        watched = watched_intervals(rounds, s.policy.interval)
        site_runs = journal.runs(store, name, since) if has_runs else []
        incidents = []
        for row in store.incidents(name, since):
            end = row["recovered"] or now
            inc: dict[str, Any] = {
                "endpoint": row["endpoint"],
                "first_failure": row["first_failure"],
                "declared_down": row["declared_down"],
                "recovered": row["recovered"],
                "ongoing": row["recovered"] is None,
                "outage_seconds": end - row["first_failure"],
                "evidence": _evidence(store, name, row["endpoint"], row["first_failure"], end),
                "runs": [],
                "user_facing_downtime": None,
            }
            for run in site_runs:
                if run.source != row["endpoint"] or not (
                    row["first_failure"] <= run.created <= end + 1
                ):
                    continue
                steps = [
                    {
                        "name": st["name"],
                        "status": st["status"],
                        "started": st["started"],
                        "finished": st["finished"],
                        "detail": st["detail"],
                    }
                    for st in run.steps
                ]
                inc["runs"].append(
                    {
                        "id": run.id,
                        "kind": run.kind,
                        "trigger": run.trigger,
                        "target": run.target,
                        "status": run.status,
                        "created": run.created,
                        "finished": run.finished,
                        "steps": steps,
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
                    served = next(
                        (st["finished"] for st in run.steps if st["name"] == "activate"), None
                    )
                if served is not None:
                    inc["standby_serving"] = served
                    inc["user_facing_downtime"] = served - row["first_failure"]
            if inc["user_facing_downtime"] is None and row["recovered"] is not None:
                inc["user_facing_downtime"] = row["recovered"] - row["first_failure"]
            if config.coordination is not None:  # which watchers saw what, when the group decided
                from failover.coordination.show import incident_events

                inc["group"] = incident_events(
                    store, name, row["endpoint"], row["first_failure"], end
                )
            incidents.append(inc)
        endpoints: dict[str, Any] = {}
        for ep in s.endpoints:
            down = [
                Interval(i["first_failure"], i["recovered"] or now)
                for i in incidents
                if i["endpoint"] == ep
            ]
            months = []
            start_at = out["since"]
            for m_start, m_end in months_between(start_at, now):
                lo, hi = max(m_start, start_at), min(m_end, now)
                watched_s, down_s, frac = uptime(down, watched, lo, hi)
                allowed = (1 - target) * (m_end - m_start)
                months.append(
                    {
                        "month": datetime.fromtimestamp(m_start, UTC).strftime("%Y-%m"),
                        "watched_seconds": round(watched_s, 1),
                        "down_seconds": round(down_s, 1),
                        "uptime": None if frac is None else round(frac, 6),
                        "meets_target": None if frac is None else down_s <= allowed,
                        "allowed_down_seconds": round(allowed, 1),
                    }
                )
            endpoints[ep] = {"address": s.endpoints[ep].address, "months": months}
        out["sites"][name] = {
            "hostname": s.hostname,
            "incidents": incidents,
            "endpoints": endpoints,
            "runs": [r.to_dict() for r in site_runs],
        }
    return out


def _evidence(store: Store, site: str, endpoint: str, start: float, end: float) -> dict[str, Any]:
    rows = store.failed_probes(site, endpoint, start, end)
    if not rows:
        return {"failed_probes": 0}
    return {
        "failed_probes": len(rows),
        "first": {"ts": rows[0]["ts"], "check": rows[0]["check_name"], "detail": rows[0]["detail"]},
        "last": {
            "ts": rows[-1]["ts"],
            "check": rows[-1]["check_name"],
            "detail": rows[-1]["detail"],
        },
    }


def render_markdown(report: dict[str, Any]) -> str:
    target = report["target"]
    lines = [
        f"# Availability report ({_day(report['since'])} to {_day(report['generated'])})",
        "",
        f"Times are UTC. Target: {target * 100:g}% per calendar month.",
        "",
    ]
    for name, site in report["sites"].items():
        lines += [f"## {name} ({site['hostname']})", ""]
        if not site["incidents"]:
            lines += ["No incidents.", ""]
        for n, inc in enumerate(site["incidents"], 1):
            state = "ongoing" if inc["ongoing"] else f"{duration(inc['outage_seconds'])}"
            lines += [f"### Incident {n}: {inc['endpoint']} down ({state})", ""]
            events = [
                (
                    inc["first_failure"],
                    "first failed probe"
                    + (
                        f" ({inc['evidence']['first']['check']}: "
                        f"{inc['evidence']['first']['detail']})"
                        if inc["evidence"].get("first")
                        else ""
                    ),
                )
            ]
            events.append((inc["declared_down"], f"{inc['endpoint']} declared down"))
            for run in inc["runs"]:
                events.append(
                    (
                        run["created"],
                        f"run #{run['id']} {run['kind']} to "
                        f"{run['target']} started ({run['trigger']})",
                    )
                )
                for st in run["steps"]:
                    if st["status"] == "skipped" or st["finished"] is None:
                        continue
                    events.append(
                        (
                            st["finished"],
                            f"  step {st['name']} {st['status']}"
                            + (f": {st['detail']}" if st["detail"] else ""),
                        )
                    )
            events += [(e["ts"], e["text"]) for e in inc.get("group", [])]
            if inc.get("standby_serving"):
                events.append(
                    (inc["standby_serving"], "every authoritative nameserver serves the standby")
                )
            if inc["recovered"]:
                events.append((inc["recovered"], f"{inc['endpoint']} recovered"))
            lines += ["| time (UTC) | event |", "|---|---|"]
            lines += [
                f"| {_ts(ts)} | {text.strip()} |" for ts, text in sorted(events, key=lambda e: e[0])
            ]
            lines.append("")
            ev = inc["evidence"]
            lines.append(f"- failed probes recorded: {ev.get('failed_probes', 0)}")
            lines.append(
                f"- outage of {inc['endpoint']}: {duration(inc['outage_seconds'])}"
                + (" (ongoing)" if inc["ongoing"] else "")
            )
            if inc["user_facing_downtime"] is not None:
                lines.append(f"- user-facing downtime: {duration(inc['user_facing_downtime'])}")
            lines.append("")
        lines += [
            "### Uptime per month",
            "",
            f"Uptime is over the time the agent watched with a working network; the "
            f"target allows {(1 - target) * 100:g}% of the whole month down.",
            "",
            "| endpoint | month | watched | down | uptime (watched) | down allowed "
            "(month) | within target |",
            "|---|---|---|---|---|---|---|",
        ]
        for ep, data in site["endpoints"].items():
            for m in data["months"]:
                up = "-" if m["uptime"] is None else f"{m['uptime'] * 100:.3f}%"
                met = "-" if m["meets_target"] is None else ("yes" if m["meets_target"] else "NO")
                lines.append(
                    f"| {ep} ({data['address']}) | {m['month']} | "
                    f"{duration(m['watched_seconds'])} | {duration(m['down_seconds'])} "
                    f"| {up} | {duration(m['allowed_down_seconds'])} | {met} |"
                )
        lines.append("")
    return "\n".join(lines)


def _ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
