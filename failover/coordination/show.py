"""What `failover status` shows of the group, per site: each watcher's verdict on each
endpoint and its age, the group's verdict, the quorum rule, the leader and its epoch, as
this watcher last saw them (its agent keeps the view in the local state: status never asks
the engine, and works while the engine is away)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from failover.coordination import journal as cjournal
from failover.humanize import duration, local_time

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.store import Store


def status_section(loaded: LoadedConfig, store: Store | None, site: str) -> dict[str, Any]:
    cfg = loaded.config.coordination
    assert cfg is not None
    now = time.time()
    view = cjournal.load_view(store) if store is not None else None
    me = loaded.watcher
    warnings: list[str] = []
    data: dict[str, Any] = {
        "engine": cfg.engine,
        "watcher": me,
        "watchers": {n: {"can_act": w.can_act} for n, w in cfg.watchers.items()},
        "quorum": cfg.quorum_count,
        "max_up": cfg.max_up_count,
        "rule": None,
        "leader": None,
        "epoch": None,
        "as_of": None,
        "engine_ok": None,
        "endpoints": {},
    }
    if view is None:
        data["summary"] = f"{cfg.engine}: no round with the group recorded yet"
        data["lines"] = []
        return {"group": data}
    shift = max(0.0, now - float(view.get("ts") or now))
    leader = view.get("leader") or {}
    data.update(
        rule=view.get("rule"),
        leader=leader.get("holder"),
        epoch=leader.get("epoch"),
        as_of=view.get("ts"),
        engine_ok=view.get("engine_ok"),
        watcher=view.get("watcher", me),
    )
    lines: list[str] = []
    for ep in loaded.config.sites[site].endpoints:
        entry = (view.get("endpoints") or {}).get(f"{site}/{ep}")
        if entry is None:
            continue
        watchers = []
        for w in entry.get("watchers") or []:
            aged = None if w.get("age") is None else round(float(w["age"]) + shift, 1)
            watchers.append(
                {
                    "watcher": w["watcher"],
                    "verdict": w["verdict"],
                    "health": w["health"],
                    "fresh": w["fresh"],
                    "age": aged,
                }
            )
        data["endpoints"][ep] = {
            "group": entry.get("group"),
            "reason": entry.get("reason"),
            "disagreement": entry.get("disagreement"),
            "since": entry.get("since"),
            "watchers": watchers,
        }
        shown = ", ".join(_watcher_text(w) for w in watchers)
        flag = "  ! watchers disagree" if entry.get("disagreement") else ""
        lines.append(f"{ep}: group {str(entry.get('group')).upper()}  ({shown}){flag}")
        if entry.get("disagreement"):
            down = [w["watcher"] for w in watchers if w["fresh"] and w["verdict"] == "down"]
            up = [w["watcher"] for w in watchers if w["fresh"] and w["verdict"] == "up"]
            warnings.append(
                f"watchers disagree about {ep}: {', '.join(down)} see it down, "
                f"{', '.join(up)} see it up (group: {entry.get('group')})"
            )
    holder = data["leader"] or "none"
    role = ""
    if me is not None:
        role = " (votes only)" if not cfg.watchers[me].can_act else ""
        role = f"; this watcher: {me}{role}" + (" = leader" if me == data["leader"] else "")
    data["summary"] = (
        f"{cfg.engine}, leader {holder}"
        + (f" (epoch {data['epoch']})" if data["epoch"] else "")
        + f"{role}; {data['rule']}; as of {local_time(view['ts'])}"
    )
    data["lines"] = lines
    if view.get("engine_ok") is False:
        since = view.get("lost_since")
        warnings.append(
            "this watcher has no contact with the coordination engine"
            + (f" since {local_time(since)}" if since else "")
            + ": no watcher acts without it"
        )
    if shift > 3 * max(s.policy.interval for s in loaded.config.sites.values()) + 60:
        warnings.append(f"the group view is {duration(shift)} old: is the agent running?")
    return {"group": data, "warnings": warnings}


def _watcher_text(w: dict[str, Any]) -> str:
    verdict = w["verdict"].upper() if w["verdict"] == "down" else w["verdict"]
    if not w["fresh"]:
        return f"{w['watcher']} stale" + (f" {w['age']:.0f}s" if w.get("age") is not None else "")
    return (
        f"{w['watcher']} {verdict} {w['age']:.1f}s"
        if w.get("age") is not None
        else f"{w['watcher']} {verdict}"
    )


def incident_events(
    store: Store, site: str, endpoint: str, start: float, end: float
) -> list[dict[str, Any]]:
    """For `report`: what each watcher saw of `endpoint` and when the group decided, from a
    little before the incident's first failure to its end; and the leader's changes."""
    out: list[dict[str, Any]] = []
    for e in cjournal.events(store, site, since=start - 60, until=end + 60):
        if e["endpoint"] not in (endpoint, ""):
            continue
        if e["kind"] == "watcher":
            text = f"watcher {e['watcher']} sees {endpoint} {e['verdict']} ({e['health']})"
        elif e["kind"] == "group":
            seen = "; ".join(
                f"{k}: {', '.join(e[k])}" for k in ("down", "up", "unknown", "stale") if e.get(k)
            )
            text = f"the group calls {endpoint} {str(e['status']).upper()} ({seen})"
        elif e["kind"] == "leader":
            text = f"leader: {e.get('holder') or 'none'} (epoch {e.get('epoch')})"
        elif e["kind"] == "engine":
            text = "coordination engine " + ("answers again" if e.get("ok") else "lost")
        else:
            continue
        out.append({"ts": e["ts"], "kind": e["kind"], "text": text, "detail": e})
    return out
