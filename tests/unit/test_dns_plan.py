"""The pure DNS switch planner, and the DNS parts of the config."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from failover.config.dns import parse_server
from failover.config.load import parse_config
from failover.dns.plan import endpoint_of, format_plan, managed_keys, plan_dns_switch
from failover.errors import ConfigError, UsageError
from providers.dns.base import RecordKey, RecordSet

ENV = {"PDNS_API_KEY": "k3y-value"}


def config(**site_dns: Any) -> dict[str, Any]:
    return {
        "dns_providers": {
            "pdns": {
                "type": "libcloud",
                "driver": "powerdns",
                "key": "${PDNS_API_KEY}",
                "args": {"host": "127.0.0.1", "port": 8081},
            },
        },
        "sites": {
            "shop": {
                "hostname": "shop.example.com",
                "endpoints": {
                    "primary": {
                        "address": "192.0.2.10",
                        "dns_values": {"AAAA": "2001:db8::10", "CNAME": "primary.example.net"},
                    },
                    "standby": {
                        "address": "198.51.100.20",
                        "dns_values": {"AAAA": "2001:db8::20", "CNAME": "Standby.Example.NET."},
                    },
                },
                "checks": [{"type": "tcp", "port": 80}],
                "dns": {
                    "provider": "pdns",
                    "zone": "example.com",
                    "records": [
                        {"name": "shop.example.com", "type": "A", "ttl": 60},
                        {"name": "shop.example.com", "type": "AAAA", "ttl": 60},
                        {"name": "cdn.example.com", "type": "CNAME", "ttl": 300},
                    ],
                    **site_dns,
                },
            }
        },
    }


def load(data: dict[str, Any]) -> Any:
    return parse_config(yaml.safe_dump(data, sort_keys=False), "failover.yaml", env=ENV)


@pytest.fixture
def site() -> Any:
    return load(config()).config.sites["shop"]


def at(site: Any, endpoint: str, ttl: int | None = None) -> dict[RecordKey, RecordSet | None]:
    out: dict[RecordKey, RecordSet | None] = {}
    records = {(r.name, r.type): r.ttl for r in site.dns.records}
    for key in managed_keys(site):
        value = site.endpoints[endpoint].dns_value(key.rtype)
        out[key] = RecordSet(key, (value,), ttl or records[(key.name, key.rtype)])
    return out


KEY_A = RecordKey("example.com", "shop.example.com", "A")
KEY_CNAME = RecordKey("example.com", "cdn.example.com", "CNAME")


def test_plan_from_primary_to_standby(site: Any) -> None:
    plan = plan_dns_switch("shop", site, at(site, "primary"), "standby")
    assert plan.verdict == "apply" and not plan.forced and plan.reasons == ()
    assert plan.from_endpoint == "primary" and plan.target == "standby"
    assert [(r.key.name, r.key.rtype, r.old.values, r.new.values) for r in plan.pending] == [
        ("shop.example.com", "A", ("192.0.2.10",), ("198.51.100.20",)),
        ("shop.example.com", "AAAA", ("2001:db8::10",), ("2001:db8::20",)),
        ("cdn.example.com", "CNAME", ("primary.example.net",), ("standby.example.net",)),
    ]
    assert [r.new.ttl for r in plan.pending] == [60, 60, 300]


def test_already_at_target_is_noop(site: Any) -> None:
    plan = plan_dns_switch("shop", site, at(site, "standby"), "standby")
    assert plan.verdict == "noop" and plan.pending == []


def test_values_compare_normalized(site: Any) -> None:
    current = at(site, "standby")
    key6 = RecordKey("example.com", "shop.example.com", "AAAA")
    current[key6] = RecordSet(key6, ("2001:DB8:0::20",), 60)
    current[KEY_CNAME] = RecordSet(KEY_CNAME, ("standby.example.net.",), 300)
    assert plan_dns_switch("shop", site, current, "standby").verdict == "noop"


def test_ttl_only_difference_is_a_change(site: Any) -> None:
    plan = plan_dns_switch("shop", site, at(site, "standby", ttl=3600), "standby")
    assert plan.verdict == "apply" and len(plan.pending) == 3
    assert plan.from_endpoint == "standby"


def test_hand_changed_value_refused_unless_forced(site: Any) -> None:
    current = at(site, "primary")
    current[KEY_A] = RecordSet(KEY_A, ("203.0.113.9",), 60)
    plan = plan_dns_switch("shop", site, current, "standby")
    assert plan.verdict == "refused"
    assert plan.reasons == (
        "shop.example.com A holds 203.0.113.9, which is no endpoint's value (changed by hand?)",
    )
    assert plan.from_endpoint is None
    forced = plan_dns_switch("shop", site, current, "standby", force=True)
    assert forced.verdict == "apply" and forced.forced and forced.reasons == plan.reasons
    assert "  forced: shop.example.com A holds 203.0.113.9" in "\n".join(format_plan(forced))


def test_several_values_are_nobodys(site: Any) -> None:
    current = at(site, "primary")
    current[KEY_A] = RecordSet(KEY_A, ("192.0.2.10", "198.51.100.20"), 60)
    assert endpoint_of(site, KEY_A, current[KEY_A]) is None
    assert plan_dns_switch("shop", site, current, "standby").verdict == "refused"


def test_missing_record_refused_unless_forced(site: Any) -> None:
    current = at(site, "primary")
    current[KEY_CNAME] = None
    plan = plan_dns_switch("shop", site, current, "primary")
    assert plan.verdict == "refused"
    assert plan.reasons == ("cdn.example.com CNAME does not exist at the provider",)
    assert plan_dns_switch("shop", site, current, "primary", force=True).verdict == "apply"


def test_hand_changed_to_the_target_value_is_fine(site: Any) -> None:
    current = at(site, "primary")
    current[KEY_A] = RecordSet(KEY_A, ("198.51.100.20",), 60)  # someone half-switched by hand
    plan = plan_dns_switch("shop", site, current, "standby")
    assert plan.verdict == "apply" and plan.from_endpoint is None
    assert [r.key for r in plan.pending] == [r.key for r in plan.records if r.key != KEY_A]


def test_unknown_endpoint_and_site_without_dns(site: Any) -> None:
    with pytest.raises(UsageError, match="no endpoint 'nowhere'"):
        plan_dns_switch("shop", site, at(site, "primary"), "nowhere")
    data = config()
    del data["sites"]["shop"]["dns"]
    bare = load(data).config.sites["shop"]
    with pytest.raises(UsageError, match="no dns section"):
        plan_dns_switch("shop", bare, {}, "standby")


def test_plan_is_pure(site: Any) -> None:
    current = at(site, "primary")
    snapshot = dict(current)
    first = plan_dns_switch("shop", site, current, "standby")
    assert plan_dns_switch("shop", site, current, "standby") == first
    assert current == snapshot
    assert first.to_dict()["records"][0] == {
        "name": "shop.example.com",
        "type": "A",
        "old": ["192.0.2.10"],
        "old_ttl": 60,
        "old_endpoint": "primary",
        "new": ["198.51.100.20"],
        "new_ttl": 60,
        "change": True,
    }


@given(
    start=st.sampled_from(["primary", "standby"]),
    target=st.sampled_from(["primary", "standby"]),
    ttl=st.sampled_from([None, 60, 3600]),
)
def test_applying_a_plan_makes_it_a_noop(start: str, target: str, ttl: int | None) -> None:
    site = load(config()).config.sites["shop"]
    plan = plan_dns_switch("shop", site, at(site, start, ttl), target)
    assert plan.verdict in ("apply", "noop")
    after = {r.key: r.new for r in plan.records}
    assert plan_dns_switch("shop", site, after, target).verdict == "noop"


# --- config -----------------------------------------------------------------------------------


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        load(data)
    return str(info.value)


def test_config_names_the_unknown_provider_with_its_line() -> None:
    data = config(provider="nope")
    lines = yaml.safe_dump(data, sort_keys=False).splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "provider: nope" in text)
    assert (
        f"failover.yaml:{line}: sites.shop.dns.provider: 'nope' is not one of dns_providers (pdns)"
    ) in problems(data)


def test_config_refuses_inline_credentials() -> None:
    data = config()
    data["dns_providers"]["pdns"]["key"] = "the-key-itself"
    text = problems(data)
    assert "must be a reference" in text and "the-key-itself" not in text


def test_config_needs_a_value_per_endpoint_and_type() -> None:
    data = config()
    del data["sites"]["shop"]["endpoints"]["standby"]["dns_values"]["AAAA"]
    assert "sites.shop.endpoints.standby: gives no value for the AAAA record" in problems(data)
    data = config()
    data["sites"]["shop"]["endpoints"]["standby"]["dns_values"]["AAAA"] = "192.0.2.1"
    assert "is not an IPv6 address" in problems(data)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"name": "shop.other.org", "type": "A"}], "is not inside the zone example.com"),
        (
            [{"name": "a.example.com", "type": "A"}, {"name": "a.example.com", "type": "A"}],
            "listed twice",
        ),
        (
            [{"name": "a.example.com", "type": "A"}, {"name": "a.example.com", "type": "CNAME"}],
            "cannot share its name",
        ),
        ([{"name": "example.com", "type": "CNAME"}], "zone apex"),
        ([{"name": "a.example.com", "type": "MX"}], "records[0].type"),
    ],
)
def test_config_record_rules(records: list[dict[str, Any]], message: str) -> None:
    assert message in problems(config(records=records))


def test_config_other_providers() -> None:
    data = config()
    data["dns_providers"]["r53"] = {"type": "route53", "access_key_id": "${PDNS_API_KEY}"}
    assert "give both access_key_id and secret_access_key" in problems(data)
    data["dns_providers"]["r53"] = {"type": "rfc2136", "server": "ns1.example.com"}
    assert "is not an IP address" in problems(data)
    data["dns_providers"]["r53"] = {
        "type": "rfc2136",
        "server": "192.0.2.53",
        "key_algorithm": "hmac-sha3",
    }
    assert "key_algorithm" in problems(data)


def test_parse_server() -> None:
    assert parse_server("127.0.0.1:5300") == ("127.0.0.1", 5300)
    assert parse_server("192.0.2.1") == ("192.0.2.1", 53)
    assert parse_server("::1") == ("::1", 53)
    assert parse_server("[::1]:5300") == ("::1", 5300)
    assert parse_server("ns1.example.com:53") == ("ns1.example.com", 53)


def test_provider_errors_name_the_key_and_its_line() -> None:
    data = config()
    data["dns_providers"]["bind"] = {"type": "rfc2136", "server": "192.0.2.53", "port": "x"}
    lines = yaml.safe_dump(data, sort_keys=False).splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "port: x" in text)
    assert f"failover.yaml:{line}: dns_providers.bind.port: " in problems(data)
    data["dns_providers"]["bind"] = {"type": "bind9"}
    assert "dns_providers.bind.type: expected one of libcloud, route53, rfc2136" in problems(data)


def test_undo_plan() -> None:
    from failover.dns.plan import plan_dns_undo
    from providers.dns.base import RecordChange

    site = load(config()).config.sites["shop"]
    before = at(site, "primary")
    before[KEY_A] = RecordSet(KEY_A, ("203.0.113.9",), 120)  # hand-set, then forced over
    now = at(site, "standby")
    created = RecordKey("example.com", "cdn.example.com", "CNAME")
    last = [RecordChange(before[k], now[k]) for k in now if k != created]
    last.append(RecordChange(None, now[created]))
    plan = plan_dns_undo("shop", site, now, last, restores=None)
    assert plan.verdict == "apply" and plan.target == "(previous values)"
    assert {r.key: r.new for r in plan.records}[KEY_A] == before[KEY_A]
    assert plan.notes == (
        "cdn.example.com CNAME did not exist before that switch: left alone (delete by hand)",
    )
    changed = dict(now)
    changed[KEY_A] = RecordSet(KEY_A, ("192.0.2.200",), 60)
    assert plan_dns_undo("shop", site, changed, last).verdict == "refused"
    assert plan_dns_undo("shop", site, changed, last, force=True).forced
    assert plan_dns_undo("shop", site, before, last).verdict == "noop"
    with pytest.raises(UsageError, match="no applied DNS switch"):
        plan_dns_undo("shop", site, now, [])


def test_sdks_load_only_when_a_provider_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, failover.cli, failover.dns.apply, failover.dns.show, providers.dns\n"
        "assert not {'boto3', 'botocore', 'libcloud'} & set(sys.modules), sys.modules.keys()\n"
        "providers.dns.provider_class('rfc2136')\n"
        "assert not {'boto3', 'libcloud'} & set(sys.modules)\n"
        "providers.dns.provider_class('libcloud')\n"
        "assert 'boto3' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_ttl_alone_is_no_change(site: Any) -> None:
    current = {k: RecordSet(k, v.values, None) for k, v in at(site, "standby").items() if v}
    assert plan_dns_switch("shop", site, current, "standby").verdict == "noop"
