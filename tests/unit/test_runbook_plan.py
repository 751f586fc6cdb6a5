"""The runbook's pure parts: which steps a move takes, and when to fail over."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.config.load import parse_config
from failover.errors import UsageError
from failover.runs.plan import decide, plan_run
from failover.runs.readiness import Evidence, assess
from failover.watch.health import HealthState

BASE = """\
dns_providers:
  pdns: {type: libcloud, driver: powerdns, key: "${PDNS_KEY}", args: {host: 127.0.0.1, port: 8081}}
sites:
  shop:
    hostname: shop.example.test
    endpoints:
      primary: {address: 192.0.2.10, ssh: {user: root}}
      standby: {address: 192.0.2.20, ssh: {user: root}}
      spare: {address: 192.0.2.30, ssh: {user: root}}
    checks: [{type: tcp, port: 22}]
    policy: {interval: 10s, down_after: 30s, up_after: 30s, cooldown: 10m,
             auto_failover: true, auto_failback: AUTOFB}
    failover: {standby: MODE, after_restore: [systemctl restart nginx]}
    dns:
      provider: pdns
      zone: example.test
      records: [{name: shop.example.test, type: A, ttl: 60}]
    backup:
      repository: /var/backups/shop
      password: ${RESTIC_PW}
      source: primary
      paths: [/srv/site]
"""


def site(mode: str = "cold", auto_failback: bool = False, **replace: str):
    text = BASE.replace("MODE", mode).replace("AUTOFB", str(auto_failback).lower())
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse_config(text, "f.yaml", env={"PDNS_KEY": "k", "RESTIC_PW": "p"}).config.sites[
        "shop"
    ]


def names(plan):
    return [(s.name, s.skip is None) for s in plan.steps]


def test_failover_restores_the_newest_snapshot_and_takes_no_final_backup():
    plan = plan_run("shop", site(), "failover", "primary", "standby")
    steps = dict(names(plan))
    assert list(steps) == [
        "preflight",
        "final_backup",
        "restore",
        "after_restore",
        "recheck",
        "switch_dns",
        "activate",
        "verify_dns",
        "notify",
    ]
    assert steps["final_backup"] is False  # the source is down
    assert steps["restore"] and steps["switch_dns"] and steps["verify_dns"]


def test_failback_backs_up_the_standby_first():
    plan = plan_run("shop", site(), "failback", "standby", "primary")
    steps = dict(names(plan))
    assert steps["final_backup"] and steps["restore"]
    assert "back up standby" in plan.steps[1].title


def test_warm_standby_skips_backup_and_restore():
    plan = plan_run("shop", site("warm"), "failover", "primary", "standby")
    steps = {s.name: s.skip for s in plan.steps}
    assert "warm" in steps["restore"]


def test_no_dns_section_skips_dns_steps_with_a_warning():
    no_dns = site(
        **{
            "    dns:\n      provider: pdns\n      zone: example.test\n"
            "      records: [{name: shop.example.test, type: A, ttl: 60}]\n": ""
        }
    )
    plan = plan_run("shop", no_dns, "failover", "primary", "standby")
    steps = {s.name: s.skip for s in plan.steps}
    assert steps["switch_dns"] and steps["verify_dns"]
    assert any("point the site's name at 192.0.2.20" in w for w in plan.warnings)


def test_unknown_or_same_target_is_a_usage_error():
    with pytest.raises(UsageError, match="no endpoint 'nope'"):
        plan_run("shop", site(), "switch", "primary", "nope")
    with pytest.raises(UsageError, match="already the active endpoint"):
        plan_run("shop", site(), "switch", "primary", "primary")


def test_restore_needs_ssh_on_the_target():
    s = site(
        **{"standby: {address: 192.0.2.20, ssh: {user: root}}": "standby: {address: 192.0.2.20}"}
    )
    with pytest.raises(UsageError, match="standby has no ssh settings"):
        plan_run("shop", s, "failover", "primary", "standby")


def h(status: str) -> HealthState:
    return HealthState(
        status=status,
        since=1.0,
        last_ts=2.0,  # type: ignore[arg-type]
        streak_ok=status in ("up", "recovering"),
    )


NOW = 100_000.0


def decide_by_health(site_, active, health, **kw):
    """decide() with each standby's readiness judged as warm (by its health)."""
    ready = {
        name: assess(site_, name, state, None, NOW, mode="warm")
        for name, state in health.items()
        if name != active
    }
    return decide(site_, active, health, ready=ready, **kw)


def test_decide_fails_over_to_the_first_healthy_standby():
    d = decide_by_health(
        site(),
        "primary",
        {"primary": h("down"), "standby": h("suspect"), "spare": h("up")},
        network_ok=True,
        now=NOW,
        last_switch=None,
        open_run=False,
    )
    assert (d.action, d.target) == ("failover", "spare")


def test_decide_never_switches_while_the_agents_network_is_down():
    d = decide_by_health(
        site(),
        "primary",
        {"primary": h("down"), "standby": h("up"), "spare": h("up")},
        network_ok=False,
        now=NOW,
        last_switch=None,
        open_run=False,
    )
    assert d.action == "none"


def test_decide_alarms_when_no_standby_is_healthy():
    d = decide_by_health(
        site(),
        "primary",
        {"primary": h("down"), "standby": h("down"), "spare": h("unknown")},
        network_ok=True,
        now=NOW,
        last_switch=None,
        open_run=False,
    )
    assert d.action == "alarm" and "no standby is ready" in d.reason
    assert "standby NOT READY (warm): health down" in d.reason


def test_decide_respects_cooldown_open_runs_and_auto_failover_off():
    health = {"primary": h("down"), "standby": h("up"), "spare": h("up")}
    assert (
        decide_by_health(
            site(),
            "primary",
            health,
            network_ok=True,
            now=NOW,
            last_switch=NOW - 60,
            open_run=False,
        ).action
        == "none"
    )
    assert (
        decide_by_health(
            site(), "primary", health, network_ok=True, now=NOW, last_switch=None, open_run=True
        ).action
        == "none"
    )
    off = site(**{"auto_failover: true": "auto_failover: false"})
    assert (
        decide_by_health(
            off, "primary", health, network_ok=True, now=NOW, last_switch=None, open_run=False
        ).action
        == "none"
    )


def test_old_primary_returning_is_not_made_active_unless_auto_failback():
    health = {"primary": h("up"), "standby": h("up"), "spare": h("up")}
    assert (
        decide_by_health(
            site(),
            "standby",
            health,
            network_ok=True,
            now=NOW,
            last_switch=NOW - 3600,
            open_run=False,
        ).action
        == "none"
    )
    d = decide_by_health(
        site(auto_failback=True),
        "standby",
        health,
        network_ok=True,
        now=NOW,
        last_switch=NOW - 3600,
        open_run=False,
    )
    assert (d.action, d.target) == ("failback", "primary")
    # ... and only once it is up (recovering is not enough)
    health["primary"] = h("recovering")
    assert (
        decide_by_health(
            site(auto_failback=True),
            "standby",
            health,
            network_ok=True,
            now=NOW,
            last_switch=NOW - 3600,
            open_run=False,
        ).action
        == "none"
    )


statuses = st.sampled_from(["unknown", "up", "suspect", "down", "recovering"])


@settings(max_examples=300, deadline=None)
@given(p=statuses, s=statuses, x=statuses, net=st.booleans(), fb=st.booleans())
def test_decide_only_ever_targets_a_healthy_endpoint(p, s, x, net, fb):
    health = {"primary": h(p), "standby": h(s), "spare": h(x)}
    d = decide_by_health(
        site(auto_failback=fb),
        "primary",
        health,
        network_ok=net,
        now=NOW,
        last_switch=None,
        open_run=False,
    )
    if d.action in ("failover", "failback"):
        assert net and d.target != "primary" and health[d.target].status == "up"
        assert health["primary"].is_down


# --- readiness: a cold standby is ready by SSH and its standby checks, not the site's -------


class R:
    def __init__(self, check: str, ok: bool, detail: str = "") -> None:
        self.check, self.ok, self.detail = check, ok, detail or ("fine" if ok else "refused")


def test_an_empty_cold_standby_is_ready_when_it_answers_over_ssh():
    """The bare server of the story: the site's checks fail on it (404), its SSH answers: a
    failover onto it goes ahead (restore, then the site's checks before DNS)."""
    s = site(mode="cold")
    health = {"primary": h("down"), "standby": h("down"), "spare": h("unknown")}
    ready = {
        "standby": assess(s, "standby", h("down"), Evidence.of(NOW - 5, [R("ssh", True)]), NOW),
        "spare": assess(s, "spare", h("unknown"), None, NOW),
    }
    assert ready["standby"].ready and ready["standby"].mode == "cold"
    assert "the site's checks are required after the restore" in ready["standby"].reason
    assert not ready["spare"].ready and "not run yet" in ready["spare"].reason
    d = decide(
        s, "primary", health, ready=ready, network_ok=True, now=NOW, last_switch=None,
        open_run=False,
    )  # fmt: skip
    assert (d.action, d.target) == ("failover", "standby")


def test_a_cold_standby_is_not_ready_without_ssh_or_with_old_or_failing_evidence():
    s = site(mode="cold")
    failing = Evidence.of(NOW - 5, [R("ssh", False, "connection refused"), R("tcp:443", True)])
    r = assess(s, "standby", h("up"), failing, NOW)
    assert not r.ready and r.reason == "ssh: connection refused"
    old = Evidence.of(NOW - 3600, [R("ssh", True)])
    r = assess(s, "standby", h("up"), old, NOW)
    assert not r.ready and "last ran 1h 00m ago" in r.reason
    no_ssh = site(
        mode="cold",
        **{"spare: {address: 192.0.2.30, ssh: {user: root}}": "spare: {address: 192.0.2.30}"},
    )
    r = assess(no_ssh, "spare", h("up"), Evidence.of(NOW, [R("ssh", True)]), NOW)
    assert not r.ready and "no ssh settings" in r.reason
    # warm: the site's checks (health up) are what counts, SSH evidence is not
    assert not assess(site(mode="warm"), "standby", h("down"), failing, NOW).ready
    assert assess(site(mode="warm"), "standby", h("up"), None, NOW).ready


def test_standby_checks_always_hold_an_ssh_check_on_the_endpoints_ssh_port():
    from failover.runs.readiness import standby_checks

    s = site(
        mode="cold",
        **{
            "after_restore: [systemctl restart nginx]}": "after_restore: [systemctl restart nginx],"
            " standby_checks: [{type: tcp, port: 443, timeout: 9s}]}",
            "standby: {address: 192.0.2.20, ssh: {user: root}}": "standby: {address: 192.0.2.20,"
            " ssh: {user: root, port: 2222}}",
        },
    )
    checks = standby_checks(s, s.endpoints["standby"])
    assert [(c.type, c.port) for c in checks] == [("ssh", 2222), ("tcp", 443)]
    assert all(c.timeout <= 5 for c in checks)  # bounded by the site's longest check


@settings(max_examples=200, deadline=None)
@given(p=statuses, s=statuses, x=statuses, ok_s=st.booleans(), ok_x=st.booleans())
def test_decide_only_ever_targets_a_ready_endpoint(p, s, x, ok_s, ok_x):
    cold = site(mode="cold")
    health = {"primary": h(p), "standby": h(s), "spare": h(x)}
    evidence = {
        "standby": Evidence.of(NOW, [R("ssh", ok_s)]),
        "spare": Evidence.of(NOW, [R("ssh", ok_x)]),
    }
    ready = {n: assess(cold, n, health[n], evidence[n], NOW) for n in ("standby", "spare")}
    d = decide(
        cold, "primary", health, ready=ready, network_ok=True, now=NOW, last_switch=None,
        open_run=False,
    )  # fmt: skip
    if d.action == "failover":
        assert ready[d.target].ready and health["primary"].is_down
        assert d.target == ("standby" if ok_s else "spare")
    if health["primary"].is_down and (ok_s or ok_x):
        assert d.action == "failover"


def test_a_restored_standby_is_not_failed_away_from_for_a_verdict_from_before_the_switch():
    """After a cold failover the new active endpoint is still `recovering` by the site's
    checks (down while it was bare): no alarm, no failover back; only failing for
    down_after while active counts."""
    s = site(mode="cold", **{"cooldown: 10m": "cooldown: 0s"})
    switched = NOW - 5
    recovering = HealthState(
        status="recovering",
        since=NOW - 4,
        last_ts=NOW,
        streak_ok=True,
        streak_start=NOW - 4,
        outage_start=NOW - 600,
    )
    ready = {"primary": assess(s, "primary", h("up"), Evidence.of(NOW, [R("ssh", True)]), NOW)}
    kw = {"ready": ready, "network_ok": True, "now": NOW, "open_run": False}
    health = {"primary": h("up"), "standby": recovering}
    assert decide(s, "standby", health, last_switch=switched, **kw).action == "none"
    # it fails again after the switch: down once it failed for down_after (30 s) while active
    failing = HealthState(
        status="down",
        since=NOW - 200,
        last_ts=NOW,
        streak_ok=False,
        streak_start=NOW - 300,
        outage_start=NOW - 600,
    )
    health["standby"] = failing
    assert decide(s, "standby", health, last_switch=NOW - 10, **kw).action == "none"
    assert decide(s, "standby", health, last_switch=NOW - 40, **kw).action == "failover"
