"""What `failover status` shows: gathered from the state and the config, no probing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from failover.humanize import duration, local_time
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.store import Store

# The areas add per-site sections (backups, DNS, runs): fn(loaded, store, site) returns a
# dict merged into the site's entry; its "warnings" list is shown prominently.
SiteSection = Callable[["LoadedConfig", "Store | None", str], dict[str, Any]]


def gather(
    loaded: LoadedConfig,
    store: Store | None,
    sections: Sequence[SiteSection] = (),
    now: float | None = None,
) -> dict[str, Any]:
    now = now or time.time()
    config = loaded.config
    out: dict[str, Any] = {
        "config": str(loaded.path),
        "state": str(loaded.state_path),
        "generated": now,
        "warnings": [],
        "sites": {},
    }
    last_round = store.last_round() if store else None
    if last_round is None:
        out["warnings"].append(
            "no probe round recorded yet: run `failover check` or start `failover agent`"
        )
        out["last_round"] = None
    else:
        out["last_round"] = {
            "ts": last_round["ts"],
            "duration": last_round["duration"],
            "network_ok": bool(last_round["network_ok"]),
            "canaries": f"{last_round['canaries_ok']}/{last_round['canaries_total']}",
        }
        slowest = max(s.policy.interval for s in config.sites.values())
        if now - last_round["ts"] > 3 * slowest + 60:
            out["warnings"].append(
                f"the last probe round was {duration(now - last_round['ts'])} ago: is the agent "
                "(or the cron job) running?"
            )
        if not last_round["network_ok"]:
            out["warnings"].append(
                "the agent's own network was down in the last round (canaries failed): "
                "nothing is declared down meanwhile"
            )
    from failover.watch.worker import running_jobs

    out["jobs"] = running_jobs(loaded.state_path)  # cron mode: what the background worker does
    health = store.all_health() if store else {}
    for site_name, site in config.sites.items():
        row = store.active_endpoint(site_name) if store else None
        active = row["active"] if row else site.initial_active
        entry: dict[str, Any] = {
            "hostname": site.hostname,
            "active": active,
            "active_since": row["since"] if row else None,
            "last_switch": row["last_switch"] if row else None,
            "auto_failover": site.policy.auto_failover,
            "endpoints": {},
            "warnings": [],
        }
        for ep_name, endpoint in site.endpoints.items():
            state = HealthState.from_dict(health.get((site_name, ep_name)))
            probes = store.last_probes(site_name, ep_name) if store else []
            entry["endpoints"][ep_name] = {
                "address": endpoint.address,
                "health": state.status,
                "since": state.since,
                "outage_start": state.outage_start,
                "last_probe": probes[0]["ts"] if probes else None,
                "checks": [
                    {
                        "check": p["check_name"],
                        "ok": bool(p["ok"]),
                        "latency_ms": p["latency_ms"],
                        "detail": p["detail"],
                        "warning": p["warning"],
                    }
                    for p in probes
                ],
            }
            for p in probes:
                if p["warning"]:
                    entry["warnings"].append(f"{ep_name} {p['check_name']}: {p['warning']}")
            if ep_name == active and state.is_down:
                entry["warnings"].append(f"the active endpoint {ep_name} is {state.status}")
        if store is not None and len(site.endpoints) > 1:
            from failover.runs.standby import stored_readiness

            for ep_name, ready in stored_readiness(store, site_name, site, active, now).items():
                entry["endpoints"][ep_name]["readiness"] = ready.to_dict()
        for section in sections:
            extra = section(loaded, store, site_name)
            entry["warnings"] += extra.pop("warnings", [])
            entry.update(extra)
        out["sites"][site_name] = entry
    return out


def render_text(data: dict[str, Any]) -> str:
    lines: list[str] = []
    lr = data.get("last_round")
    if lr:
        net = "ok" if lr["network_ok"] else "DOWN"
        lines.append(
            f"last round {local_time(lr['ts'])} ({lr['duration']:.1f}s), "
            f"agent network {net}, canaries {lr['canaries']}"
        )
    for warning in data["warnings"]:
        lines.append(f"! {warning}")
    if data.get("jobs"):
        running = ", ".join(f"{j['key']} (pid {j['pid']})" for j in data["jobs"])
        lines.append(f"running in the background: {running}")
    for site_name, site in data["sites"].items():
        lines.append("")
        auto = "auto-failover on" if site["auto_failover"] else "auto-failover off"
        lines.append(f"{site_name} ({site['hostname']})  active: {site['active']}  [{auto}]")
        rows: list[tuple[str, ...]] = [("", "ENDPOINT", "ADDRESS", "HEALTH", "SINCE", "LAST PROBE")]
        for ep_name, ep in site["endpoints"].items():
            probe = (
                "; ".join(
                    f"{c['check']} {'ok' if c['ok'] else 'FAIL'} {c['detail']}"
                    for c in ep["checks"]
                )
                or "-"
            )
            marker = "*" if ep_name == site["active"] else ""
            rows.append(
                (
                    marker,
                    ep_name,
                    ep["address"],
                    ep["health"],
                    local_time(ep["since"]) if ep["since"] else "-",
                    probe,
                )
            )
        lines += _table(rows, indent="  ")
        for ep_name, ep in site["endpoints"].items():
            ready = ep.get("readiness")
            if ready:
                verdict = "ready" if ready["ready"] else "NOT READY"
                lines.append(
                    f"  standby {ep_name}: {verdict} for a failover ({ready['mode']}): "
                    f"{ready['reason']}"
                )
        if site.get("backup"):
            lines.append(f"  backup: {_backup_line(site['backup'])}")
        if site.get("dns"):
            lines.append(f"  dns: {_dns_line(site['dns'])}")
        for key, value in site.items():
            if key in (
                "hostname",
                "active",
                "active_since",
                "last_switch",
                "auto_failover",
                "endpoints",
                "warnings",
                "backup",
                "dns",
            ):
                continue
            if isinstance(value, dict) and "summary" in value:
                lines.append(f"  {key}: {value['summary']}")
                lines += [f"    {line}" for line in value.get("lines", [])]
        for warning in site["warnings"]:
            lines.append(f"  ! {warning}")
    return "\n".join(lines).lstrip("\n")


def _backup_line(b: dict[str, Any]) -> str:
    out = str(b.get("health", "unknown"))
    if b.get("age") is not None:
        out += f", newest snapshot {duration(b['age'])} old"
        if b.get("max_age"):
            out += f" (max {duration(b['max_age'])})"
    else:
        out += ", no snapshot yet"
    if b.get("last_attempt_ok") is False:
        out += ", last run FAILED" + (f": {b['error']}" if b.get("error") else "")
    if b.get("last_verify"):
        verdict = "ok" if b.get("last_verify_ok") else "FAILED"
        out += f", verified {local_time(b['last_verify'])} ({verdict})"
    return out


def _dns_line(d: dict[str, Any]) -> str:
    records = d.get("records") or []
    shown = (
        ", ".join(
            f"{r.get('name')} {r.get('type')} -> {r.get('endpoint') or 'unknown value'}"
            for r in records
        )
        or "records not read yet"
    )
    out = f"{d.get('provider')} zone {d.get('zone')}: {shown}"
    last = d.get("last_switch")
    if last:
        out += (
            f"; last switch to {last.get('to_endpoint')} {local_time(last.get('started'))}"
            f" ({last.get('outcome')})"
        )
    return out


def _table(rows: list[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent
        + " ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True))
        + " "
        + r[-1]
        for r in rows
    ]
