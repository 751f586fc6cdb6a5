"""The I/O side of a standby's readiness (failover/runs/readiness.py decides): the evidence
the probe rounds stored, and probing a standby now (the preflight step, drills).

    stored_readiness(store, site_name, site, active, now)  -> {endpoint: Readiness}
    probe_readiness(loaded, site_name, endpoint, mode=...) -> Readiness (probes now)
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError
from failover.runs.readiness import (
    CheckOutcome,
    Evidence,
    Mode,
    Readiness,
    assess,
    evidence_key,
    from_results,
    mode_of,
    standby_checks,
)
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.models import Site
    from failover.store import Store

SSH_LOGIN_TIMEOUT = 30.0  # seconds for `ssh ... true` when probing a cold standby now


def stored_evidence(store: Store, site_name: str, endpoint: str) -> Evidence | None:
    raw = store.get_meta(evidence_key(site_name, endpoint))
    if not raw:
        return None
    try:
        return Evidence.from_dict(json.loads(raw))
    except ValueError:
        return None


def stored_readiness(
    store: Store, site_name: str, site: Site, active: str, now: float | None = None
) -> dict[str, Readiness]:
    """Each endpoint but the active one: its readiness from what the rounds stored."""
    now = time.time() if now is None else now
    out: dict[str, Readiness] = {}
    for name in site.endpoints:
        if name == active:
            continue
        health = HealthState.from_dict(store.health_state(site_name, name))
        out[name] = assess(site, name, health, stored_evidence(store, site_name, name), now)
    return out


def probe_endpoint(loaded: LoadedConfig, site_name: str, endpoint: str) -> list[Any]:
    """Probe one endpoint with the site's checks, now. Returns the ProbeResults in order."""
    from failover.watch.probes.engine import run_probes

    site = loaded.config.sites[site_name]
    ep = site.endpoints[endpoint]
    targets = [
        (i, check.for_endpoint(ep), ep.address, site.hostname)
        for i, check in enumerate(site.checks)
    ]
    results = run_probes(targets)
    return [results[i] for i in range(len(site.checks))]


def probe_readiness(
    loaded: LoadedConfig, site_name: str, endpoint: str, *, mode: Mode | None = None
) -> Readiness:
    """Probe `endpoint` now: warm, with the site's checks (all must pass); cold, with its
    standby checks and then a real SSH login (`true`), which the restore needs."""
    from failover.watch.probes.engine import run_probes
    from providers.remote import Remote

    site = loaded.config.sites[site_name]
    mode = mode or mode_of(site)
    ep = site.endpoints[endpoint]
    now = time.time()
    if mode == "warm":
        results = probe_endpoint(loaded, site_name, endpoint)
        failing = [f"{r.check}: {r.detail}" for r in results if not r.ok]
        if failing:
            return Readiness(endpoint, mode, False, "; ".join(failing), now)
        return Readiness(endpoint, mode, True, f"passes the site's {len(results)} check(s)", now)
    if ep.ssh is None:
        return assess(site, endpoint, HealthState(), None, now, mode="cold")
    checks = standby_checks(site, ep)
    targets = [
        (i, c, (ep.ssh.host if c.type == "ssh" else None) or ep.address, site.hostname)
        for i, c in enumerate(checks)
    ]
    found = run_probes(targets)
    outcomes = [
        CheckOutcome(found[i].check, found[i].ok, found[i].detail) for i in range(len(checks))
    ]
    if all(o.ok for o in outcomes):
        try:
            remote = Remote(ep.ssh, ep.address, name=endpoint)
            remote.run(["true"], timeout=SSH_LOGIN_TIMEOUT)
            outcomes.append(CheckOutcome("ssh login", True, "ok"))
        except FailoverError as exc:
            outcomes.append(CheckOutcome("ssh login", False, str(exc).replace("\n", "; ")))
    return from_results(endpoint, outcomes, now)
