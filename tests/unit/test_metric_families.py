"""The metrics as data: names, types, labels, the runs counter that only grows, and the
alert rules in examples/prometheus/ naming only metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from failover.show.families import (
    BackupSample,
    ProbeSample,
    Snapshot,
    families,
    metric_names,
    run_outcomes,
)

RULES = Path(__file__).resolve().parents[2] / "examples" / "prometheus" / "failover-rules.yml"


def snap(**kw: object) -> Snapshot:
    base: dict[str, object] = {"now": 1000.0, "version": "0.1.0", "python": "3.11.7"}
    base.update(kw)
    return Snapshot(**base)  # type: ignore[arg-type]


def by_name(s: Snapshot) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(dict(x.labels), x.value) for x in f.samples] for f in families(s)}


def test_probe_families_follow_blackbox_exporter() -> None:
    m = by_name(
        snap(
            probes=[
                ProbeSample("shop", "primary", "https", True, 0.0123, 200, 2000.0),
                ProbeSample("shop", "primary", "ssh", False, None),
            ]
        )
    )
    https = {"site": "shop", "endpoint": "primary", "check": "https"}
    ssh = {"site": "shop", "endpoint": "primary", "check": "ssh"}
    assert m["failover_probe_success"] == [(https, 1.0), (ssh, 0.0)]
    assert m["failover_probe_duration_seconds"] == [(https, 0.0123)]  # no answer: absent
    assert m["failover_probe_http_status_code"] == [(https, 200.0)]
    assert m["failover_probe_ssl_earliest_cert_expiry"] == [(https, 2000.0)]


def test_health_active_backups_and_agent() -> None:
    m = by_name(
        snap(
            health={("shop", "primary"): "down", ("shop", "standby"): "suspect",
                    ("blog", "a"): "unknown"},
            active={"shop": "standby"},
            backups=[BackupSample("shop", 900.0, 400.0), BackupSample("blog", None, None)],
            network_ok=False,
            last_round=990.0,
        )
    )  # fmt: skip
    assert m["failover_endpoint_up"] == [
        ({"site": "shop", "endpoint": "primary"}, 0.0),
        ({"site": "shop", "endpoint": "standby"}, 1.0),
    ]  # unknown: absent, not a guess
    states = {(x["endpoint"], x["state"]): v for x, v in m["failover_endpoint_health_state"]}
    assert states[("primary", "down")] == 1 and states[("primary", "up")] == 0
    assert sum(v for (ep, _), v in states.items() if ep == "a") == 1
    assert m["failover_active_endpoint_info"] == [({"site": "shop", "endpoint": "standby"}, 1.0)]
    assert m["failover_backup_last_success_timestamp_seconds"] == [({"site": "shop"}, 900.0)]
    assert m["failover_backup_newest_snapshot_age_seconds"] == [({"site": "shop"}, 600.0)]
    assert m["failover_agent_network_ok"] == [({}, 0.0)]
    assert m["failover_last_round_timestamp_seconds"] == [({}, 990.0)]
    assert m["failover_build"] == [({"version": "0.1.0", "python": "3.11.7", "mode": "agent"}, 1.0)]


def test_runs_count_attempts_by_how_they_ended() -> None:
    runs = [("failover", "done", 3), ("failover", "running", 1), ("failback", "failed", 2),
            ("migrate", "abandoned", 1)]  # fmt: skip
    assert run_outcomes(runs) == {
        ("failover", "done"): 1,
        ("failover", "failed"): 2,
        ("failback", "failed"): 2,
        ("migrate", "abandoned"): 1,
        ("migrate", "failed"): 1,
    }


# A run's life: each step is what the engine does to its (status, attempts).
_STEPS = {
    "start": lambda st, n: ("running", n + 1) if st in ("new", "failed", "running") else (st, n),
    "fail": lambda st, n: ("failed", n) if st == "running" else (st, n),
    "done": lambda st, n: ("done", n) if st == "running" else (st, n),
    "abandon": lambda st, n: ("abandoned", n) if st in ("running", "failed") else (st, n),
}


@given(st.lists(st.sampled_from(sorted(_STEPS)), max_size=12))
def test_the_runs_counter_never_goes_down(steps: list[str]) -> None:
    status, attempts = "new", 0
    before: dict[tuple[str, str], int] = {}
    for step in steps:
        status, attempts = _STEPS[step](status, attempts)
        runs = [] if status == "new" else [("failover", status, attempts)]
        now = run_outcomes(runs)
        assert all(now.get(k, 0) >= v for k, v in before.items()), (steps, before, now)
        before = now


def test_counters_end_in_total_and_names_use_base_units() -> None:
    for fam in families(snap()):
        assert fam.name.startswith("failover_")
        assert not re.search(r"_(ms|milliseconds|minutes|hours|days|percent)$", fam.name)
        if fam.kind == "counter":
            assert fam.exposed_names == (fam.name + "_total",)
    assert "failover_runs_total" in metric_names()


def test_alert_rules_name_only_metrics_that_exist() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    alerts = {r["alert"] for r in rules}
    assert {
        "FailoverActiveEndpointDown",
        "FailoverEndpointDown",
        "FailoverBackupStale",
        "FailoverCertificateExpiringSoon",
        "FailoverAgentNotReporting",
    } <= alerts
    known = metric_names()
    for rule in rules:
        used = set(re.findall(r"\bfailover_[a-z_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= known, (rule["alert"], used - known)
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
