"""One probe round: probe the canaries and every endpoint concurrently, fold the results
into health, keep the evidence, notify on changes. The daemon and cron both go through
`run_round()`, so they keep the same evidence and reach the same verdicts.

When fewer canaries pass than `canary_min_ok`, the agent's own network is down: the round
is stored as inconclusive and counts neither as up nor down for any site.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from failover.config.models import Config
from failover.hooks import EndpointOutcome, RoundResult
from failover.logs import get_logger
from failover.maintenance import state as maintenance
from failover.notify import Event, Notifier
from failover.runs.readiness import Evidence, evidence_key, mode_of, standby_checks
from failover.store import Store, Transition
from failover.watch.health import Change, HealthState, network_ok, step
from failover.watch.probes.engine import run_probes
from failover.watch.probes.result import ProbeResult

log = get_logger("agent")

CANARY = ""  # the `site` column of canary probes

# --- one round ---------------------------------------------------------------------------


PerEndpoint = dict[tuple[str, str], list[ProbeResult]]


def probe_round(
    config: Config, sites: Iterable[str] | None = None
) -> tuple[float, float, list[ProbeResult], PerEndpoint, PerEndpoint]:
    """Probe the canaries, every endpoint of `sites` (all by default) with the site's
    checks, and every endpoint of a site with a cold standby with its standby checks (the
    evidence of its readiness: failover/runs/readiness.py), all concurrently."""
    names = list(sites) if sites is not None else list(config.sites)
    targets: list[tuple[Any, Any, str, str | None]] = []
    for i, canary in enumerate(config.canaries):
        host = canary.host or ""
        targets.append((("", f"canary{i}"), canary, host, host))
    for site_name in names:
        site = config.sites[site_name]
        for ep_name, endpoint in site.endpoints.items():
            for j, check in enumerate(site.checks):
                targets.append(
                    (
                        (site_name, ep_name, j),
                        check.for_endpoint(endpoint),
                        endpoint.address,
                        site.hostname,
                    )
                )
    standby_targets = _standby_targets(config, names)
    targets += standby_targets
    started = time.time()
    t0 = time.monotonic()
    results = run_probes(targets)
    duration = time.monotonic() - t0
    canaries = [results[("", f"canary{i}")] for i in range(len(config.canaries))]
    per_endpoint: dict[tuple[str, str], list[ProbeResult]] = {}
    for site_name in names:
        site = config.sites[site_name]
        for ep_name in site.endpoints:
            per_endpoint[(site_name, ep_name)] = [
                results[(site_name, ep_name, j)] for j in range(len(site.checks))
            ]
    standby: PerEndpoint = {}
    for key, *_ in standby_targets:
        standby.setdefault((key[0], key[1]), []).append(results[key])
    return started, duration, canaries, per_endpoint, standby


def _standby_targets(config: Config, names: list[str]) -> list[tuple[Any, Any, str, str | None]]:
    """The standby checks of every endpoint (with SSH settings) of the sites whose standby
    is cold and that have somewhere to fail over to."""
    out: list[tuple[Any, Any, str, str | None]] = []
    for site_name in names:
        site = config.sites[site_name]
        if mode_of(site) != "cold" or len(site.endpoints) < 2:
            continue
        for ep_name, endpoint in site.endpoints.items():
            if endpoint.ssh is None:
                continue
            for j, check in enumerate(standby_checks(site, endpoint)):
                # an ssh check goes where SSH goes (ssh.host when set)
                address = endpoint.ssh.host if check.type == "ssh" else None
                out.append(
                    (
                        (site_name, ep_name, "standby", j),
                        check,
                        address or endpoint.address,
                        site.hostname,
                    )
                )
    return out


def run_round(
    config: Config,
    store: Store,
    notifier: Notifier,
    sites: Iterable[str] | None = None,
    lock: threading.Lock | None = None,
) -> RoundResult:
    """Probe, fold into health, keep the evidence, notify. Never raises for a probe.

    The probing runs without `lock`; recording the results runs under it."""
    probed = probe_round(config, sites)
    with lock or contextlib.nullcontext():
        return record_round(config, store, notifier, *probed)


def record_round(
    config: Config,
    store: Store,
    notifier: Notifier,
    ts: float,
    duration: float,
    canaries: list[ProbeResult],
    per_endpoint: PerEndpoint,
    standby: PerEndpoint | None = None,
) -> RoundResult:
    net_ok = network_ok(config, canaries)
    result = RoundResult(ts=ts, duration=duration, network_ok=net_ok, canaries=canaries)

    previous_warnings = _previous_warnings(store, per_endpoint)
    probes = [_probe_row(ts, CANARY, f"canary{i}", r) for i, r in enumerate(canaries)]
    for (site, ep), results in per_endpoint.items():
        probes += [_probe_row(ts, site, ep, r) for r in results]
    store.add_round(
        ts,
        duration,
        net_ok,
        sum(r.ok for r in canaries),
        len(canaries),
        probes,
        detail=None if net_ok else _canary_detail(config, canaries),
    )
    _track_network(store, notifier, net_ok, ts, config, canaries)
    # sites in maintenance: probed and recorded, judged on nothing (like a round with the
    # agent's network down), their notifications held back
    quiet, ended = maintenance.track(
        config, store, notifier, sorted({site for site, _ in per_endpoint}), ts
    )
    result.maintenance = {site: active.summary for site, active in quiet.items()}
    for (site_name, ep_name), results in (standby or {}).items():
        # The newest evidence only (readiness is about now); inconclusive rounds keep the last.
        if net_ok:
            evidence = Evidence.of(ts, results).to_dict()
            store.set_meta(evidence_key(site_name, ep_name), json.dumps(evidence))

    for (site_name, ep_name), results in per_endpoint.items():
        policy = config.sites[site_name].policy
        ok = all(r.ok for r in results)
        observation = ok if net_ok and site_name not in quiet else None
        before = HealthState.from_dict(store.health_state(site_name, ep_name))
        if site_name in ended:
            before = maintenance.fresh_streak(before)
        after, change = step(before, ts, observation, policy)
        outcome = EndpointOutcome(site_name, ep_name, results, observation, before, after, change)
        transition = None
        if change is not None:
            transition = Transition(
                ts,
                site_name,
                ep_name,
                change.from_status,
                change.to_status,
                _reason(change, outcome),
            )
        store.record_observation(
            site_name,
            ep_name,
            ts,
            observation,
            after.to_dict(),
            transition,
            change.incident if change else None,
            incident_start=after.outage_start or before.outage_start,
        )
        result.outcomes.append(outcome)
        _log_outcome(outcome)
        if change is not None:
            fenced = store.get_meta(f"fenced_endpoint:{site_name}:{ep_name}")
            if fenced is None:
                _notify_change(notifier, config, outcome)
            else:  # an old primary fenced on purpose after a failover: no alarms about it
                log.info(
                    "not notifying: %s was fenced after run #%s",
                    ep_name,
                    fenced,
                    extra={"site": site_name, "endpoint": ep_name},
                )
        for r in results:
            if r.warning and previous_warnings.get((site_name, ep_name, r.check)) != r.warning:
                log.warning(
                    "%s: %s",
                    r.check,
                    r.warning,
                    extra={"site": site_name, "endpoint": ep_name, "check": r.check},
                )
                notifier.send(
                    Event(
                        "warning",
                        f"[{site_name}] {ep_name}: {r.warning}",
                        f"Check {r.check} on {ep_name} of {site_name}: {r.warning}",
                        site=site_name,
                        endpoint=ep_name,
                    )
                )
    log.debug(
        "round done in %.2fs: %d endpoint(s), network %s",
        duration,
        len(result.outcomes),
        "ok" if net_ok else "DOWN",
    )
    return result


def _probe_row(ts: float, site: str, endpoint: str, r: ProbeResult) -> dict[str, Any]:
    return {
        "ts": ts,
        "site": site,
        "endpoint": endpoint,
        "check": r.check,
        "ok": r.ok,
        "latency_ms": r.latency_ms,
        "detail": r.detail,
        "warning": r.warning,
    }


def _previous_warnings(
    store: Store, per_endpoint: dict[tuple[str, str], Any]
) -> dict[tuple[str, str, str], str | None]:
    out: dict[tuple[str, str, str], str | None] = {}
    for site, ep in per_endpoint:
        for row in store.last_probes(site, ep):
            out[(site, ep, row["check_name"])] = row["warning"]
    return out


def _canary_detail(config: Config, canaries: list[ProbeResult]) -> str:
    return "; ".join(
        f"{c.host} {r.check}: {r.detail}" for c, r in zip(config.canaries, canaries, strict=True)
    )


def _track_network(
    store: Store,
    notifier: Notifier,
    network_ok: bool,
    ts: float,
    config: Config,
    canaries: list[ProbeResult],
) -> None:
    was = store.get_meta("network_ok")
    if was is None:
        store.set_meta("network_ok", "1" if network_ok else "0")
        store.set_meta("network_since", str(ts))
        if network_ok:
            return
    elif (was == "1") == network_ok:
        return
    since = float(store.get_meta("network_since") or ts)
    store.set_meta("network_ok", "1" if network_ok else "0")
    store.set_meta("network_since", str(ts))
    if network_ok:
        store.add_agent_event("online", f"offline for {round(ts - since)}s", ts)
        log.warning("agent's network is back after %ds; rounds count again", round(ts - since))
        notifier.send(
            Event(
                "agent_online",
                "failover agent is online again",
                f"The agent's own network was down for {round(ts - since)}s; "
                "rounds in that time counted neither as up nor down.",
                level="success",
            )
        )
    else:
        detail = _canary_detail(config, canaries)
        store.add_agent_event("offline", detail, ts)
        log.error(
            "agent's own network is down (canaries failed: %s); nothing is declared "
            "down until it is back",
            detail,
        )
        notifier.send(
            Event(
                "agent_offline",
                "failover agent is offline",
                f"The canaries failed ({detail}). Until they pass again no site is "
                "declared down or switched.",
                level="failure",
            )
        )


def _reason(change: Change, outcome: EndpointOutcome) -> str:
    if change.to_status in ("suspect", "down") or (change.to_status == "recovering"):
        if change.to_status == "recovering":
            return change.reason
        return f"{change.reason}: {outcome.failure_detail()}"
    return change.reason


def _log_outcome(o: EndpointOutcome) -> None:
    extra = {"site": o.site, "endpoint": o.endpoint}
    for r in o.results:
        log.debug(
            "%s %s: %s",
            r.check,
            "ok" if r.ok else "FAIL",
            r.detail,
            extra={**extra, "check": r.check},
        )
    if o.change is None:
        return
    c = o.change
    level = {"down": 40, "suspect": 30, "recovering": 20, "up": 20}.get(c.to_status, 20)
    log.log(level, "%s -> %s (%s)", c.from_status, c.to_status, _reason(c, o), extra=extra)


def _notify_change(notifier: Notifier, config: Config, o: EndpointOutcome) -> None:
    c = o.change
    assert c is not None
    hostname = config.sites[o.site].hostname
    if c.to_status == "down":
        started = o.after.outage_start or c.ts
        notifier.send(
            Event(
                "down",
                f"[{o.site}] {o.endpoint} is DOWN",
                f"{o.endpoint} ({config.sites[o.site].endpoints[o.endpoint].address}) of "
                f"{hostname} is down since {_iso(started)}: {o.failure_detail()}",
                site=o.site,
                endpoint=o.endpoint,
                level="failure",
            )
        )
    elif c.to_status == "up" and c.from_status in ("down", "recovering"):
        notifier.send(
            Event(
                "recovered",
                f"[{o.site}] {o.endpoint} recovered",
                f"{o.endpoint} of {hostname} is up again ({c.reason}).",
                site=o.site,
                endpoint=o.endpoint,
                level="success",
            )
        )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))
