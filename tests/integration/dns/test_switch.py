"""Switching a site's records through the core (failover.dns), against each real server:
plan, apply, journal, verify, idempotence, refusal and --force, undo, faults mid-way."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from failover.dns.apply import provider_for, switch_site_dns
from failover.dns.journal import last_switch
from failover.dns.show import dns_ttl_warnings, show_dns
from failover.errors import AuthError, Unreachable, UnsafePlan
from failover.store import Store
from providers.dns.base import DnsProvider
from tests.integration.dns.conftest import Backend
from tests.support.dns_servers import query

pytestmark = pytest.mark.integration

PRIMARY_VALUES = {
    ("shop.example.com", "A"): ["192.0.2.10"],
    ("www.example.com", "A"): ["192.0.2.10"],
    ("shop.example.com", "AAAA"): ["2001:db8::10"],
}
STANDBY_VALUES = {
    ("shop.example.com", "A"): ["198.51.100.20"],
    ("www.example.com", "A"): ["198.51.100.20"],
    ("shop.example.com", "AAAA"): ["2001:db8::20"],
}


def served(backend: Backend) -> dict[tuple[str, str], list[str]]:
    return {k: backend.server.get_records(*k)[0] for k in PRIMARY_VALUES}


def changes_rows(store: Store) -> list[Any]:
    try:
        return store.conn.execute("SELECT * FROM dns_changes ORDER BY id").fetchall()
    except Exception:
        return []


def soa_serial(backend: Backend) -> int | None:
    if backend.kind == "route53":
        return None
    port = int(backend.nameserver.rpartition(":")[2])
    values, _ = query(port, "example.com", "SOA")
    return int(values[0].split()[2])


def test_switch_applies_verifies_and_journals(backend: Backend, tmp_path: Path) -> None:
    loaded = backend.load(tmp_path)
    with Store.open(loaded.state_path, lock=True) as store:
        result = switch_site_dns(loaded, "shop", "standby", store)
        assert result.plan.verdict == "apply"
        assert result.plan.from_endpoint == "primary"
        assert result.applied is not None and result.applied.outcome == "applied"
        assert set(result.applied.changes.values()) == {"applied"}
        assert result.verification is not None and result.verification.ok
        assert len(result.verification.answers) == 3
        assert served(backend) == STANDBY_VALUES
        last = last_switch(store, "shop")
        assert last is not None
        assert (last["from_endpoint"], last["to_endpoint"], last["outcome"]) == (
            "primary",
            "standby",
            "applied",
        )
        assert last["verified"] == 1
        assert {(c["name"], c["rtype"]): c["old_values"] for c in last["changes"]} == PRIMARY_VALUES
        assert {c["outcome"] for c in last["changes"]} == {"applied"}
        if backend.kind == "route53":
            assert last["synced"] == 1


def test_same_switch_twice_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    loaded = backend.load(tmp_path)
    with Store.open(loaded.state_path, lock=True) as store:
        switch_site_dns(loaded, "shop", "standby", store)
        rows, serial = len(changes_rows(store)), soa_serial(backend)
        again = switch_site_dns(loaded, "shop", "standby", store)
        assert again.plan.verdict == "noop"
        assert again.applied is not None and again.applied.outcome == "noop"
        assert again.verification is not None and again.verification.ok
        assert len(changes_rows(store)) == rows
        assert soa_serial(backend) == serial  # the zone was not touched
        assert served(backend) == STANDBY_VALUES


def test_switch_back_undoes(backend: Backend, tmp_path: Path) -> None:
    loaded = backend.load(tmp_path)
    with Store.open(loaded.state_path, lock=True) as store:
        switch_site_dns(loaded, "shop", "standby", store)
        back = switch_site_dns(loaded, "shop", "primary", store)
        assert back.plan.from_endpoint == "standby"
        assert back.verification is not None and back.verification.ok
        assert served(backend) == PRIMARY_VALUES
        last = last_switch(store, "shop")
        assert last is not None
        assert {(c["name"], c["rtype"]): c["old_values"] for c in last["changes"]} == STANDBY_VALUES


def test_hand_changed_value_refused_then_forced(backend: Backend, tmp_path: Path) -> None:
    backend.server.set_records("www.example.com", "A", ["203.0.113.9"], 60)
    loaded = backend.load(tmp_path)
    with Store.open(loaded.state_path, lock=True) as store:
        with pytest.raises(UnsafePlan) as info:
            switch_site_dns(loaded, "shop", "standby", store)
        assert info.value.exit_code == 3
        assert "www.example.com A holds 203.0.113.9" in str(info.value)
        assert backend.server.get_records("www.example.com", "A")[0] == ["203.0.113.9"]
        assert served(backend)[("shop.example.com", "A")] == ["192.0.2.10"]
        assert changes_rows(store) == []
        forced = switch_site_dns(loaded, "shop", "standby", store, force=True)
        assert forced.plan.forced and forced.verification is not None and forced.verification.ok
        assert served(backend) == STANDBY_VALUES
        last = last_switch(store, "shop")
        assert last is not None and last["forced"] == 1
        old = {(c["name"], c["rtype"]): c["old_values"] for c in last["changes"]}
        assert old[("www.example.com", "A")] == ["203.0.113.9"]


def test_missing_record_refused_unless_forced(backend: Backend, tmp_path: Path) -> None:
    backend.server.set_records("www.example.com", "A", [], 60)
    loaded = backend.load(tmp_path)
    with Store.open(loaded.state_path, lock=True) as store:
        with pytest.raises(UnsafePlan, match="does not exist"):
            switch_site_dns(loaded, "shop", "standby", store)
        switch_site_dns(loaded, "shop", "standby", store, force=True)
        assert served(backend) == STANDBY_VALUES


def test_dry_run_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    loaded = backend.load(tmp_path)
    result = switch_site_dns(loaded, "shop", "standby", None, apply=False)
    assert result.plan.verdict == "apply" and result.applied is None
    assert [r.changes for r in result.plan.records] == [True, True, True]
    assert served(backend) == PRIMARY_VALUES


class StopsServerFirst(DnsProvider):
    """The real adapter, with the real server stopped right before the change is sent."""

    def __init__(self, inner: DnsProvider, backend: Backend) -> None:
        super().__init__(inner.name, inner.config)
        self.inner, self.backend = inner, backend
        self.capabilities = inner.capabilities

    def read_many(self, keys: Any) -> Any:
        return self.inner.read_many(keys)

    def apply(self, changes: Any) -> Any:
        self.backend.server.stop()
        return self.inner.apply(changes)


def test_server_stopped_mid_switch_state_says_nothing_changed(
    backend: Backend, tmp_path: Path
) -> None:
    loaded = backend.load(tmp_path, provider={**backend.provider, "timeout": "2s"})
    provider = StopsServerFirst(provider_for(loaded, "shop"), backend)
    with Store.open(loaded.state_path, lock=True) as store:
        with pytest.raises(Unreachable) as info:
            switch_site_dns(loaded, "shop", "standby", store, provider=provider)
        assert "nothing was changed" in str(info.value)
        switch = store.conn.execute("SELECT * FROM dns_switches").fetchone()
        assert switch["outcome"] == "failed"
        assert {r["outcome"] for r in changes_rows(store)} == {"not_applied"}
    if backend.kind != "route53":  # moto keeps no data across a restart
        backend.server.start()
        assert served(backend) == PRIMARY_VALUES


def test_hung_server_mid_switch_outcome_unknown(bind_backend: Backend, tmp_path: Path) -> None:
    """named frozen (SIGSTOP) while the update is in flight: the tool cannot know whether it
    landed, says so in the state, and `dns show` tells once the server answers again."""
    backend = bind_backend
    loaded = backend.load(tmp_path, provider={**backend.provider, "timeout": "1s"})
    provider = provider_for(loaded, "shop")
    pid = backend.server.proc.pid
    original_apply = provider._apply

    def freeze_then_apply(changes: Any) -> Any:
        os.kill(pid, signal.SIGSTOP)
        return original_apply(changes)

    provider._apply = freeze_then_apply  # type: ignore[method-assign]
    try:
        with Store.open(loaded.state_path, lock=True) as store:
            with pytest.raises(Unreachable) as info:
                switch_site_dns(loaded, "shop", "standby", store, provider=provider)
            assert "unknown" in str(info.value)
            assert store.conn.execute("SELECT outcome FROM dns_switches").fetchone()[0] == "unknown"
            assert {r["outcome"] for r in changes_rows(store)} == {"unknown"}
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(0.3)
    shown = show_dns(loaded, "shop")
    # BIND processes the update it had buffered: all or nothing, never half.
    endpoints = {r["endpoint"] for r in shown[0]["records"]}
    assert endpoints in ({"standby"}, {"primary"})


def test_wrong_tsig_key_refused_and_journaled(bind_backend: Backend, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA==\n")
    loaded = bind_backend.load(
        tmp_path, provider={**bind_backend.provider, "key_secret": f"file:{wrong}"}
    )
    with Store.open(loaded.state_path, lock=True) as store:
        with pytest.raises(AuthError, match="TSIG signature was rejected"):
            switch_site_dns(loaded, "shop", "standby", store)
        assert store.conn.execute("SELECT outcome FROM dns_switches").fetchone()[0] == "failed"
    assert served(bind_backend) == PRIMARY_VALUES


def test_unsigned_update_refused(bind_backend: Backend, tmp_path: Path) -> None:
    provider = {
        k: v for k, v in bind_backend.provider.items() if k not in ("key_name", "key_secret")
    }
    loaded = bind_backend.load(tmp_path, provider=provider)
    with (
        Store.open(loaded.state_path, lock=True) as store,
        pytest.raises(AuthError, match="refused the update"),
    ):
        switch_site_dns(loaded, "shop", "standby", store)
    assert served(bind_backend) == PRIMARY_VALUES


@pytest.mark.parametrize("algorithm", ["hmac-sha512", "hmac-sha1", "hmac-md5", "hmac-sha224"])
def test_other_tsig_algorithms(algorithm: str, tmp_path: Path) -> None:
    from tests.integration.dns.conftest import make_backend

    gen = make_backend("rfc2136", tmp_path)
    backend = next(gen)
    try:
        # restart BIND with a key of this algorithm
        backend.server.stop()
        backend.server.algorithm = algorithm
        backend.server._prepared = False
        backend.server.start()
        secret = backend.server.write_secret(tmp_path / "ddns.secret")
        loaded = backend.load(
            tmp_path, provider={**backend.server.provider_config(f"file:{secret}")}
        )
        with Store.open(loaded.state_path, lock=True) as store:
            result = switch_site_dns(loaded, "shop", "standby", store)
        assert result.verification is not None and result.verification.ok
    finally:
        gen.close()


def test_verification_reports_each_server(pdns_backend: Backend, tmp_path: Path) -> None:
    """A nameserver that does not answer keeps the verification from passing: per-server
    report, and the change itself stays applied."""
    from tests.support import free_port

    dead = f"127.0.0.1:{free_port()}"
    loaded = pdns_backend.load(tmp_path, nameservers=[pdns_backend.nameserver, dead])
    with Store.open(loaded.state_path, lock=True) as store:
        started = time.monotonic()
        result = switch_site_dns(loaded, "shop", "standby", store, deadline=1.5)
        assert time.monotonic() - started < 6
        report = result.verification
        assert report is not None and not report.ok
        by_server = {(a.server, a.name, a.rtype): a for a in report.answers}
        assert all(a.ok for (s, _, _), a in by_server.items() if s == pdns_backend.nameserver)
        assert all(not a.ok and a.error for (s, _, _), a in by_server.items() if s == dead)
        assert store.conn.execute("SELECT verified FROM dns_switches").fetchone()[0] == 0
    assert served(pdns_backend) == STANDBY_VALUES


def test_show_and_ttl_warnings(backend: Backend, tmp_path: Path) -> None:
    backend.server.set_records("www.example.com", "A", ["203.0.113.9"], 3600)
    loaded = backend.load(tmp_path, max_ttl=300)
    with Store.open(loaded.state_path, lock=True) as store:
        shown = show_dns(loaded, "shop", store=store)
        records = {(r["name"], r["type"]): r for r in shown[0]["records"]}
        assert records[("shop.example.com", "A")]["endpoint"] == "primary"
        assert records[("www.example.com", "A")]["endpoint"] is None  # unknown value
        assert records[("www.example.com", "A")]["ttl"] == 3600
        answers = records[("shop.example.com", "A")]["nameservers"]
        assert answers[0]["values"] == ["192.0.2.10"] and answers[0]["ttl"] == 60
        warnings = dns_ttl_warnings(loaded, store=store)
        assert len(warnings) == 1 and "www.example.com A has TTL 3600s" in warnings[0]
        # without asking the provider: what the state last saw
        assert dns_ttl_warnings(loaded, store=store, live=False) == warnings
    json.dumps(shown)  # serializable for --json


def test_undo_puts_back_exactly_the_previous_values(backend: Backend, tmp_path: Path) -> None:
    """Even a value that was no endpoint's (forced over) comes back with --undo."""
    from failover.dns.apply import undo_site_dns

    backend.server.set_records("www.example.com", "A", ["203.0.113.9"], 120)
    loaded = backend.load(tmp_path)
    with Store.open(loaded.state_path, lock=True) as store:
        with pytest.raises(Exception, match="no applied DNS switch"):
            undo_site_dns(loaded, "shop", store)
        switch_site_dns(loaded, "shop", "standby", store, force=True)
        assert served(backend) == STANDBY_VALUES
        undone = undo_site_dns(loaded, "shop", store)
        assert undone.plan.verdict == "apply" and undone.plan.from_endpoint == "standby"
        assert undone.verification is not None and undone.verification.ok
        assert backend.server.get_records("www.example.com", "A") == (["203.0.113.9"], 120)
        assert backend.server.get_records("shop.example.com", "A")[0] == ["192.0.2.10"]
        # someone changes a record after the switch: undo refuses, like a switch would
        switch_site_dns(loaded, "shop", "standby", store, force=True)
        backend.server.set_records("shop.example.com", "A", ["203.0.113.77"], 60)
        with pytest.raises(UnsafePlan, match="changed since"):
            undo_site_dns(loaded, "shop", store)


def test_status_section_from_the_state(pdns_backend: Backend, tmp_path: Path) -> None:
    from failover.dns.show import dns_status_section
    from failover.show import status
    from tests.support import free_port

    backend = pdns_backend
    dead = f"127.0.0.1:{free_port()}"
    loaded = backend.load(tmp_path, nameservers=[backend.nameserver, dead], max_ttl=300)
    with Store.open(loaded.state_path, lock=True) as store:
        switch_site_dns(loaded, "shop", "standby", store, deadline=0.5)
        backend.server.set_records("www.example.com", "A", ["203.0.113.9"], 3600)
        dns_ttl_warnings(loaded, store=store)  # what the agent runs now and then: refreshes
    with Store.open(loaded.state_path, readonly=True) as store:
        section = dns_status_section(loaded, store, "shop")
        gathered = status.gather(loaded, store, [dns_status_section])
    warnings = section["warnings"]
    assert any("www.example.com A has TTL 3600s" in w for w in warnings)
    assert any("was not verified" in w for w in warnings)
    assert any("holds no endpoint's value" in w for w in warnings)
    records = {(r["name"], r["type"]): r["endpoint"] for r in section["dns"]["records"]}
    assert records[("shop.example.com", "A")] == "standby"
    assert records[("www.example.com", "A")] is None
    assert section["dns"]["last_switch"]["outcome"] == "applied"
    assert gathered["sites"]["shop"]["dns"]["zone"] == "example.com"
    assert set(warnings) <= set(gathered["sites"]["shop"]["warnings"])


def test_half_applied_batch_is_journaled_as_partial(moto_backend: Backend, tmp_path: Path) -> None:
    """moto, unlike Route 53, applies a batch change by change: a batch whose second change
    is refused leaves the first applied. The state must say exactly that."""
    import dataclasses

    from failover.dns.apply import apply_dns_plan, read_current
    from failover.dns.plan import PlannedChange, plan_dns_switch
    from providers.dns.base import RecordKey, RecordSet

    loaded = moto_backend.load(tmp_path)
    site = loaded.config.sites["shop"]
    provider = provider_for(loaded, "shop")
    plan = plan_dns_switch("shop", site, read_current(provider, site), "standby")
    outside = RecordKey("example.com", "www.example.org", "A")
    plan = dataclasses.replace(
        plan,
        records=(
            *plan.records,
            PlannedChange(outside, None, RecordSet(outside, ("192.0.2.1",), 60), None),
        ),
    )
    with Store.open(loaded.state_path, lock=True) as store:
        with pytest.raises(Exception, match="changed: ") as info:
            apply_dns_plan(plan, provider, store)
        assert "1 left as they were" in str(info.value)
        assert store.conn.execute("SELECT outcome FROM dns_switches").fetchone()[0] == "partial"
        outcomes = {(r["name"], r["rtype"]): r["outcome"] for r in changes_rows(store)}
    assert outcomes == {
        ("shop.example.com", "A"): "applied",
        ("www.example.com", "A"): "applied",
        ("shop.example.com", "AAAA"): "applied",
        ("www.example.org", "A"): "not_applied",
    }


def test_nameservers_from_the_zone_and_resolvers_asked(
    bind_backend: Backend, tmp_path: Path
) -> None:
    """Without a configured list, the NS records give the servers (looked up here through
    the test's BIND, never a real resolver); resolvers the user names are asked too."""
    from failover.dns.verify import find_nameservers, verify_dns
    from providers.dns.base import RecordKey, RecordSet

    port = bind_backend.server.port
    assert find_nameservers("example.com", None, 2, resolver_address=("127.0.0.1", port)) == [
        ("127.0.0.1", 53)
    ]
    key = RecordKey("example.com", "shop.example.com", "A")
    report = verify_dns(
        [RecordSet(key, ("192.0.2.10",), 60)],
        [("127.0.0.1", port)],
        2,
        resolvers=[("127.0.0.1", port)],
    )
    assert report.ok and len(report.resolvers) == 1 and report.resolvers[0].ok


def test_switch_interrupted_after_journaling_is_settled_later(
    backend: Backend, tmp_path: Path
) -> None:
    """The process dies after journaling a switch (rows 'pending') and after the provider
    applied it: the next switch reads the records back and records what happened."""
    from failover.dns.apply import read_current
    from failover.dns.journal import journal_start
    from failover.dns.plan import plan_dns_switch

    loaded = backend.load(tmp_path)
    site = loaded.config.sites["shop"]
    provider = provider_for(loaded, "shop")
    plan = plan_dns_switch("shop", site, read_current(provider, site), "standby")
    with Store.open(loaded.state_path, lock=True) as store:
        from failover.dns.journal import DNS_SCHEMA

        store.ensure_schema(DNS_SCHEMA)
        journal_start(store, plan, time.time())  # ... and the process dies here
    for (name, rtype), values in STANDBY_VALUES.items():  # the provider had applied it
        backend.server.set_records(name, rtype, values, 60)
    with Store.open(loaded.state_path, lock=True) as store:
        switch_site_dns(loaded, "shop", "primary", store)
        first = store.conn.execute("SELECT * FROM dns_switches ORDER BY id").fetchone()
        assert first["outcome"] == "applied" and "interrupted" in first["detail"]
        assert {r["outcome"] for r in changes_rows(store) if r["switch_id"] == first["id"]} == {
            "applied"
        }
    assert served(backend) == PRIMARY_VALUES


def test_undo_skips_a_failed_switch(bind_backend: Backend, tmp_path: Path) -> None:
    from failover.dns.apply import undo_site_dns

    backend = bind_backend
    loaded = backend.load(tmp_path)
    with Store.open(loaded.state_path, lock=True) as store:
        switch_site_dns(loaded, "shop", "standby", store)
        stopper = StopsServerFirst(provider_for(loaded, "shop"), backend)
        with pytest.raises(Unreachable):
            switch_site_dns(loaded, "shop", "primary", store, provider=stopper)
        assert last_switch(store, "shop")["outcome"] == "failed"  # type: ignore[index]
        backend.server.start()
        undone = undo_site_dns(loaded, "shop", store)  # undoes the applied one
        assert undone.plan.target == "primary"
    assert served(backend) == PRIMARY_VALUES


def test_a_reading_from_before_the_active_endpoint_took_over_is_refreshed_soon(
    pdns_backend: Backend, tmp_path: Path
) -> None:
    """Under coordination the leader switches DNS; another watcher's last reading of the
    records predates the switch. Its status says the reading may be out of date, and its
    agent reads the records again within 30 s, not an hour."""
    from failover.dns import hook
    from failover.dns.show import dns_status_section
    from failover.hooks import HookContext

    backend = pdns_backend
    data = backend.config(tmp_path)
    data["coordination"] = {  # the engine is not contacted here
        "engine": "s3",
        "watchers": {"a": {}, "b": {}, "c": {"can_act": False}},
        "lease_ttl": "2m",
        "s3": {"bucket": "group", "endpoint_url": "http://127.0.0.1:9"},
    }
    (tmp_path / "watcher.yaml").write_text("watcher: a\n")
    loaded = backend.load(tmp_path, data)
    assert loaded.watcher == "a"
    with Store.open(loaded.state_path, lock=True) as store:
        dns_ttl_warnings(loaded, store=store)  # this watcher's reading: primary
        store.set_meta("dns_refreshed", str(time.time()))
        time.sleep(0.05)
        # the leader switched the records and the group made the standby active
        for (name, rtype), values in STANDBY_VALUES.items():
            backend.server.set_records(name, rtype, values, 300)
        store.set_active("shop", "standby")
        warnings = dns_status_section(loaded, store, "shop")["warnings"]
        assert any("before standby became active" in w for w in warnings), warnings

        spawned: list[str] = []

        def spawn(key: str, fn: Any, **_: Any) -> bool:
            spawned.append(key)
            fn(store)
            return True

        ctx = HookContext(loaded, store, notifier=None, result=None, spawn=spawn)  # type: ignore[arg-type]
        hook.dns_refresh_hook(ctx)  # read just now: not yet
        assert spawned == []
        store.set_meta("dns_refreshed", str(time.time() - hook.DNS_STALE_REFRESH_EVERY - 1))
        hook.dns_refresh_hook(ctx)
        assert spawned == ["dns-refresh"]
        section = dns_status_section(loaded, store, "shop")
        records = {(r["name"], r["type"]): r["endpoint"] for r in section["dns"]["records"]}
        assert set(records.values()) == {"standby"}
        assert not any("became active" in w for w in section["warnings"]), section["warnings"]
        # fresh and in agreement: back to the hourly reading
        store.set_meta("dns_refreshed", str(time.time() - hook.DNS_STALE_REFRESH_EVERY - 1))
        hook.dns_refresh_hook(ctx)
        assert spawned == ["dns-refresh"]
