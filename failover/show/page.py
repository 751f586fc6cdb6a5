"""The public status page as plain data and as HTML. Pure.

What users of the site need: is it working now; if not, what is being done (the incident
in progress, in words for them: no addresses, snapshot ids or commands); how it went
over the last days. Downtime here is what users saw: from the first failed probe of the
endpoint that was serving them until the standby served them (or it recovered).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from failover.humanize import duration, local_time
from failover.show.charts import COLORS, uptime_bars_svg
from failover.show.html import chart, e, marks_list, page
from failover.show.uptime import Interval, daily_uptime, uptime

HEADLINES = {
    "operational": "All systems operational",
    "degraded": "Some requests are failing; we are watching it",
    "outage": "The site is down",
    "unknown": "Status not known yet",
}

_STEP_WORDS = {
    "restore": "the latest backup is restored on the standby server",
    "recheck": "the standby server passes its checks",
    "switch_dns": "DNS points at the standby server",
    "verify_dns": "every DNS server answers with the standby server",
    "final_backup": "a last backup of the old server is taken",
}


def active_at(ts: float, switches: Sequence[tuple[float, str, str]], current: str) -> str:
    """The endpoint serving the site at `ts`, from the switches (time, from, to) that
    completed, oldest first, and the endpoint serving it now."""
    for when, source, _target in switches:
        if ts < when:
            return source
    return current


def user_downtime(
    incidents: Sequence[dict[str, Any]],
    switches: Sequence[tuple[float, str, str]],
    current: str,
    now: float,
) -> list[Interval]:
    """The outages users saw: incidents of the endpoint serving them at the time, until
    the standby served them or the endpoint recovered."""
    out = []
    for inc in incidents:
        if active_at(inc["first_failure"], switches, current) != inc["endpoint"]:
            continue  # a standby's outage: nobody was sent there
        end = inc.get("standby_serving") or inc.get("recovered") or now
        out.append(Interval(inc["first_failure"], end))
    return out


def public_events(inc: dict[str, Any]) -> list[dict[str, Any]]:
    """The incident's timeline in words for the site's users."""
    out = [
        {"ts": inc["first_failure"], "text": "Our monitoring sees the site failing"},
        {"ts": inc["declared_down"], "text": "Outage confirmed: the site is not reachable"},
    ]
    for run in inc.get("runs", []):
        out.append({"ts": run["created"], "text": "Moving the site to the standby server"})
        for st in run["steps"]:
            words = _STEP_WORDS.get(st["name"])
            if st["finished"] is None or st["status"] not in ("done", "failed") or not words:
                continue
            if st["status"] == "failed":
                out.append(
                    {"ts": st["finished"], "text": "The move failed; the operator is alerted"}
                )
            else:
                out.append({"ts": st["finished"], "text": words[0].upper() + words[1:]})
    if inc.get("standby_serving"):
        out.append(
            {"ts": inc["standby_serving"], "text": "Resolved: the standby server serves the site"}
        )
    if inc.get("recovered"):
        out.append({"ts": inc["recovered"], "text": "The original server is reachable again"})
    return sorted(out, key=lambda x: x["ts"])


def site_state(active_health: str, network_ok: bool | None, open_run: bool) -> str:
    if network_ok is False:
        return "unknown"
    if active_health in ("down", "recovering"):
        return "outage"
    if active_health == "suspect" or open_run:
        return "degraded"
    if active_health == "up":
        return "operational"
    return "unknown"


def site_model(
    *,
    site: str,
    hostname: str,
    title: str,
    now: float,
    every: float,
    days: int,
    active: str,
    active_health: str,
    network_ok: bool | None,
    open_run: bool,
    incidents: Sequence[dict[str, Any]],
    switches: Sequence[tuple[float, str, str]],
    watched: Sequence[Interval],
    timelines: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything the page and status.json show for one site (no addresses, no details)."""
    start = now - days * 86400
    down = user_downtime(incidents, switches, active, now)
    per_day = daily_uptime(down, list(watched), start, now)
    watched_s, down_s, frac = uptime(down, list(watched), start, now)
    state = site_state(active_health, network_ok, open_run)
    users_down = [
        i for i in incidents if active_at(i["first_failure"], switches, active) == i["endpoint"]
    ]
    current = next(
        (i for i in reversed(users_down) if i["ongoing"] and not i.get("standby_serving")),
        None,
    )
    headline = HEADLINES[state]
    if state == "outage" and open_run:
        headline = "The site is down: we are moving it to the standby server"
    elif state == "operational" and active != _first_endpoint(switches, active):
        headline = "All systems operational (served by the standby server)"
    past = []
    for inc in reversed(users_down):
        end = inc.get("standby_serving") or inc.get("recovered")
        if end is None or inc is current:
            continue
        past.append(
            {
                "started": inc["first_failure"],
                "resolved": end,
                "duration_seconds": round(end - inc["first_failure"], 1),
                "events": public_events(inc),
            }
        )
    return {
        "site": site,
        "hostname": hostname,
        "title": title,
        "generated": now,
        "generated_text": local_time(now),
        "refresh_seconds": every,
        "state": state,
        "headline": headline,
        "active": active,
        "incident": None
        if current is None
        else {
            "started": current["first_failure"],
            "ongoing": True,
            "events": public_events(current),
        },
        "uptime": None if frac is None else round(frac, 6),
        "days_shown": days,
        "watched_seconds": round(watched_s, 1),
        "down_seconds": round(down_s, 1),
        "days": [
            {
                "date": _date(d.start),
                "start": d.start,
                "uptime": None if d.uptime is None else round(d.uptime, 6),
                "down_seconds": round(d.down, 1),
                "watched_seconds": round(d.watched, 1),
            }
            for d in per_day
        ],
        "past_incidents": past[:20],
        "timelines": timelines or {},
    }


def _first_endpoint(switches: Sequence[tuple[float, str, str]], current: str) -> str:
    return switches[0][1] if switches else current


def _date(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def render_site(model: dict[str, Any], *, base: str = "") -> str:
    """The page of one site; `base` is the path from the page to the site's folder."""
    m = model
    parts = [
        '<header class="top">',
        f"<h1>{e(m['title'])}</h1>",
        f'<p class="meta">{e(m["hostname"])} &middot; updated {e(m["generated_text"])}; '
        f"refreshed at least every {e(duration(m['refresh_seconds']))}. If that time is long "
        "past, the monitor itself may be down.</p>",
        "</header>",
        f'<div class="banner {e(m["state"])}" id="state" data-state="{e(m["state"])}">'
        f"{e(m['headline'])}</div>",
    ]
    inc = m["incident"]
    if inc:
        items = "".join(
            f'<li><span class="time">{e(local_time(x["ts"]))}</span> {e(x["text"])}</li>'
            for x in inc["events"]
        )
        parts.append(
            '<section class="card" id="incident"><h2 style="margin-top:0">Incident in '
            f"progress, since {e(local_time(inc['started']))}</h2>"
            f'<ol class="events">{items}</ol></section>'
        )
    tip_days = []
    for d in m["days"]:
        if d["uptime"] is None:
            tip = f"{d['date']}: not watched"
        else:
            tip = f"{d['date']}: {d['uptime'] * 100:.2f}% up" + (
                f", down {duration(d['down_seconds'])}" if d["down_seconds"] else ""
            )
        tip_days.append((d["start"], d["uptime"], tip))
    up = "no data yet" if m["uptime"] is None else f"{m['uptime'] * 100:.3f}% uptime"
    parts.append(
        '<section class="card" id="uptime">'
        f'<h2 style="margin-top:0">Last {m["days_shown"]} days: {e(up)}</h2>'
        + uptime_bars_svg(tip_days, 0.999)
        + f'<p class="legend"><span>{e(m["days"][0]["date"] if m["days"] else "")}</span>'
        f'<span style="float:right">today (UTC days)</span></p>' + _day_legend() + "</section>"
    )
    for ep, data in m.get("timelines", {}).items():
        marks = data.get("marks", [])
        parts.append(
            f'<section class="card timeline-card"><h2 style="margin-top:0">{e(ep)} server'
            f"{' (serving the site now)' if ep == m.get('active') else ''}, recent hours</h2>"
            + chart(data, f"{ep}: availability and response time", numbered=False)
            + (marks_list_from(marks) if marks else "")
            + "</section>"
        )
    if m["past_incidents"]:
        rows = "".join(
            f'<li><span class="time">{e(local_time(p["started"]))}</span>: down for '
            f"{e(duration(p['duration_seconds']))}, resolved {e(local_time(p['resolved']))}</li>"
            for p in m["past_incidents"]
        )
        parts.append(
            '<section class="card" id="past"><h2 style="margin-top:0">Past incidents</h2>'
            f'<ul class="events">{rows}</ul></section>'
        )
    parts.append(
        f'<footer>Machine-readable: <a href="{e(base)}status.json">status.json</a>. This page '
        "is published to storage apart from the site's own servers, so that it stays up when "
        "they are down. Times are shown with their zone.</footer>"
    )
    return page(
        f"{m['title']}: {m['headline']}",
        "\n".join(parts),
        refresh=60,
        description=f"status of {m['hostname']}",
    )


def marks_list_from(marks: Sequence[dict[str, Any]]) -> str:
    from failover.show.charts import Mark

    return marks_list([Mark(x["ts"], x["label"]) for x in marks])


def _day_legend() -> str:
    items = [
        (COLORS["ok"], "up (99.9% or more)"),
        (COLORS["partial"], "some downtime"),
        (COLORS["fail"], "down 5% of the day or more"),
        (COLORS["none"], "not watched"),
    ]
    return (
        '<p class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{e(t)}</span>' for c, t in items)
        + "</p>"
    )


def render_index(title: str, models: Sequence[dict[str, Any]], now: float) -> str:
    """The overview of several sites, each linking to its own page."""
    rows = "".join(
        f'<a href="{e(m["site"])}/" style="text-decoration:none">'
        f'<div class="banner {e(m["state"])}" data-state="{e(m["state"])}">'
        f"{e(m['hostname'])}: {e(m['headline'])}</div></a>"
        for m in models
    )
    body = (
        f'<header class="top"><h1>{e(title)}</h1><p class="meta">updated '
        f"{e(local_time(now))}</p></header>{rows}<footer>Each site's page has its "
        "incidents and uptime.</footer>"
    )
    return page(title, body, refresh=60)


def public_json(model: dict[str, Any]) -> dict[str, Any]:
    """status.json: the model without the charts' raw buckets."""
    return {k: v for k, v in model.items() if k != "timelines"}
