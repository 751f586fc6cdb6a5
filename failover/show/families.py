"""The Prometheus metrics as plain data: which families there are, their help, type and
samples, from a snapshot of what the agent knows. Pure; failover/show/metrics.py turns
the families into prometheus_client's and serves or writes them.

Names follow blackbox_exporter where they mean the same (probe_success,
probe_duration_seconds, probe_http_status_code, probe_ssl_earliest_cert_expiry), prefixed
`failover_`; base units (seconds, unix time); `_total` on the one counter; labels only
from the config (site, endpoint, check, kind, outcome, state), never from results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

HEALTH_STATES = ("unknown", "up", "suspect", "down", "recovering")
RUN_OUTCOMES = ("done", "failed", "abandoned")


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Family:
    name: str  # for a counter, without `_total` (prometheus_client adds it)
    kind: str  # gauge, counter, info
    help: str
    labels: tuple[str, ...]
    samples: list[Sample] = field(default_factory=list)

    @property
    def exposed_names(self) -> tuple[str, ...]:
        """The sample names as they appear on /metrics."""
        if self.kind == "counter":
            return (self.name + "_total",)
        if self.kind == "info":
            return (self.name + "_info",)
        return (self.name,)


@dataclass(frozen=True)
class ProbeSample:
    site: str
    endpoint: str
    check: str
    ok: bool
    duration: float | None  # seconds
    http_status: int | None = None
    cert_expiry: float | None = None  # unix time


@dataclass(frozen=True)
class BackupSample:
    site: str
    last_success: float | None  # unix time the last successful backup run started
    newest_snapshot: float | None  # unix time of the set's newest good snapshot


@dataclass(frozen=True)
class Snapshot:
    """What the metrics show, gathered by metrics.py from the state and the last rounds."""

    now: float
    version: str
    python: str
    probes: Sequence[ProbeSample] = ()
    health: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (site, ep) -> status
    active: Mapping[str, str] = field(default_factory=dict)  # site -> endpoint
    backups: Sequence[BackupSample] = ()
    runs: Sequence[tuple[str, str, int]] = ()  # (kind, status, attempts) of each run
    network_ok: bool | None = None
    last_round: float | None = None
    mode: str = "agent"  # agent or check


def run_outcomes(runs: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """(kind, outcome) -> attempts that ended so: a run retried twice and then done counts
    2 failed and 1 done. Only ever grows as runs go on, as a counter must."""
    out: dict[tuple[str, str], int] = {}
    for kind, status, attempts in runs:
        attempts = max(int(attempts), 0)
        if status == "done":
            failed, final = attempts - 1, "done"
        elif status == "running":
            failed, final = attempts - 1, None  # the current attempt has not ended
        elif status == "abandoned":
            failed, final = attempts, "abandoned"
        else:  # failed: every attempt so far failed
            failed, final = attempts, None
        if failed > 0:
            out[(kind, "failed")] = out.get((kind, "failed"), 0) + failed
        if final is not None:
            out[(kind, final)] = out.get((kind, final), 0) + 1
    return out


PROBE = ("site", "endpoint", "check")
ENDPOINT = ("site", "endpoint")


def families(s: Snapshot) -> list[Family]:
    """Every family, in a stable order (empty families too: their HELP and TYPE still
    tell a scraper the metric exists)."""
    f = {
        "success": Family(
            "failover_probe_success",
            "gauge",
            "1 when the check passed in the endpoint's last round, else 0.",
            PROBE,
        ),
        "duration": Family(
            "failover_probe_duration_seconds",
            "gauge",
            "How long the check took in the last round (absent when nothing answered).",
            PROBE,
        ),
        "status": Family(
            "failover_probe_http_status_code",
            "gauge",
            "The HTTP status code of the last response (http and https checks).",
            PROBE,
        ),
        "expiry": Family(
            "failover_probe_ssl_earliest_cert_expiry",
            "gauge",
            "When the endpoint's TLS certificate expires, as a unix time (https checks).",
            PROBE,
        ),
    }
    for p in sorted(s.probes, key=lambda p: (p.site, p.endpoint, p.check)):
        labels = {"site": p.site, "endpoint": p.endpoint, "check": p.check}
        f["success"].samples.append(Sample(labels, 1.0 if p.ok else 0.0))
        if p.duration is not None:
            f["duration"].samples.append(Sample(labels, round(p.duration, 6)))
        if p.http_status is not None:
            f["status"].samples.append(Sample(labels, float(p.http_status)))
        if p.cert_expiry is not None:
            f["expiry"].samples.append(Sample(labels, round(p.cert_expiry, 3)))
    out = list(f.values())
    out += _health(s)
    out += _backups(s)
    out.append(_runs(s))
    out += _agent(s)
    return out


def _health(s: Snapshot) -> list[Family]:
    up = Family(
        "failover_endpoint_up",
        "gauge",
        "1 when the endpoint is up by the site's policy (up or suspect), 0 when it is down "
        "or recovering; absent while unknown.",
        ENDPOINT,
    )
    state = Family(
        "failover_endpoint_health_state",
        "gauge",
        "The endpoint's health: 1 for its current state, 0 for the others.",
        (*ENDPOINT, "state"),
    )
    active = Family(
        "failover_active_endpoint_info",
        "gauge",
        "1 for the endpoint that serves the site now.",
        ENDPOINT,
    )
    for (site, endpoint), status in sorted(s.health.items()):
        labels = {"site": site, "endpoint": endpoint}
        if status in ("up", "suspect"):
            up.samples.append(Sample(labels, 1.0))
        elif status in ("down", "recovering"):
            up.samples.append(Sample(labels, 0.0))
        for name in HEALTH_STATES:
            state.samples.append(Sample({**labels, "state": name}, float(status == name)))
    for site, endpoint in sorted(s.active.items()):
        active.samples.append(Sample({"site": site, "endpoint": endpoint}, 1.0))
    return [up, state, active]


def _backups(s: Snapshot) -> list[Family]:
    last = Family(
        "failover_backup_last_success_timestamp_seconds",
        "gauge",
        "When the last successful backup run of the site started, as a unix time.",
        ("site",),
    )
    age = Family(
        "failover_backup_newest_snapshot_age_seconds",
        "gauge",
        "How old the site's newest good snapshot is (the recovery point, now).",
        ("site",),
    )
    for b in sorted(s.backups, key=lambda b: b.site):
        if b.last_success is not None:
            last.samples.append(Sample({"site": b.site}, round(b.last_success, 3)))
        if b.newest_snapshot is not None:
            age.samples.append(
                Sample({"site": b.site}, round(max(0.0, s.now - b.newest_snapshot), 3))
            )
    return [last, age]


def _runs(s: Snapshot) -> Family:
    runs = Family(
        "failover_runs",
        "counter",
        "Attempts of runs (failover, failback, switch, migrate) by how they ended.",
        ("kind", "outcome"),
    )
    for (kind, outcome), n in sorted(run_outcomes(s.runs).items()):
        runs.samples.append(Sample({"kind": kind, "outcome": outcome}, float(n)))
    return runs


def _agent(s: Snapshot) -> list[Family]:
    net = Family(
        "failover_agent_network_ok",
        "gauge",
        "1 when the canaries passed in the last round (the agent's own network is fine).",
        (),
    )
    last = Family(
        "failover_last_round_timestamp_seconds",
        "gauge",
        "When the last probe round started, as a unix time (alert when it gets old).",
        (),
    )
    build = Family(
        "failover_build",
        "info",
        "The failover version and Python running it.",
        ("version", "python", "mode"),
        [Sample({"version": s.version, "python": s.python, "mode": s.mode}, 1.0)],
    )
    if s.network_ok is not None:
        net.samples.append(Sample({}, 1.0 if s.network_ok else 0.0))
    if s.last_round is not None:
        last.samples.append(Sample({}, round(s.last_round, 3)))
    return [net, last, build]


def metric_names() -> set[str]:
    """Every sample name the tool exposes (the alert rules' test checks against these)."""
    names: set[str] = set()
    for fam in families(Snapshot(now=0.0, version="", python="")):
        names.update(fam.exposed_names)
    return names
