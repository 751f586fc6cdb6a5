"""Config errors in the tool's words with "did you mean", `validate --json` for errors too,
advice on valid configs that would be useless at 3 a.m., and config warnings logged once
per change of the config by `check` (not every cron round)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from failover.config.advice import advise, is_documentation_address, is_documentation_name
from failover.config.load import parse_config
from failover.errors import ConfigError
from tests.support import write
from tests.support.cli import failover

GOOD_SITE = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 127.0.0.1}
    checks: [{type: tcp, port: 1, timeout: 1s}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml")
    return caught.value.problems


def test_unknown_keys_and_values_get_a_did_you_mean() -> None:
    found = problems(
        """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {adress: 127.0.0.1}
    checks:
      - {type: htps}
      - {type: tcp, port: 22, timout: 3s}
    policy: {intervall: 30s}
    failover: {standby: hot}
sitse: {}
"""
    )
    text = "\n".join(found)
    assert (
        "f.yaml:5: sites.shop.endpoints.primary.adress: unknown key (did you mean address?)" in text
    )
    assert (
        "f.yaml:7: sites.shop.checks[0]: unknown type 'htps' (did you mean https?): "
        "expected http, https, tcp, icmp, dns or ssh" in text
    )
    assert "sites.shop.checks[1].timout: unknown key (did you mean timeout?)" in text
    assert "sites.shop.policy.intervall: unknown key (did you mean interval?)" in text
    assert "sites.shop.failover.standby: expected cold or warm, got 'hot'" in text
    assert "f.yaml:11: sitse: unknown key (did you mean sites?)" in text
    assert "Input tag" not in text and "Input should" not in text


def test_pydantic_wording_becomes_the_tools() -> None:
    text = "\n".join(
        problems(
            """\
canary_min_ok: 0
notify: x
sites:
  "bad name!":
    hostname: s
    endpoints: {a: {address: 127.0.0.1}}
    checks: [{type: tcp, port: abc}]
    policy: {auto_failover: maybe}
"""
        )
    )
    assert "canary_min_ok: must be at least 1" in text
    assert "notify: expected a list" in text
    assert "'bad name!' is not a valid name" in text
    assert "port: expected a whole number, got 'abc'" in text
    assert "auto_failover: expected true or false, got 'maybe'" in text
    assert "Input should" not in text and "String should" not in text


def _advice(text: str, exists: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    loaded = parse_config(text, "f.yaml")
    return [message for _loc, message in advise(loaded.config, lambda p: str(p) in exists)]


def test_advice_for_configs_useless_at_3am(tmp_path: Path) -> None:
    advice = _advice(
        """\
sites:
  shop:
    hostname: shop.example.com
    endpoints:
      primary: {address: 203.0.113.10, ssh: {key: /etc/failover/id_ed25519, known_hosts: /nope}}
      standby: {address: 127.0.0.2}
    checks: [{type: tcp, port: 22}]
    policy: {auto_failover: true}
    failover: {standby: cold}
"""
    )
    text = "\n".join(advice)
    assert "no notification target" in text
    assert "auto_failover is on but the site has no `dns`" in text
    assert "a cold standby and no `backup` set" in text
    assert "SSH key file /etc/failover/id_ed25519 does not exist" in text
    assert "known_hosts file /nope does not exist" in text
    assert "203.0.113.10 is a documentation address" in text
    assert "shop.example.com is a documentation name" in text
    # a config without those problems gets no advice
    clean = _advice(
        'notify: [{url: "json://127.0.0.1:9/x"}]\n'
        + GOOD_SITE.replace(
            "primary: {address: 127.0.0.1}", "primary: {address: 127.0.0.1, ssh: {key: /k}}"
        ),
        exists={"/k"},
    )
    assert clean == []


def test_site_notify_replacing_everything_with_nothing_is_advised() -> None:
    advice = _advice(
        'notify: [{url: "json://127.0.0.1:9/x"}]\n' + GOOD_SITE + "    notify: {replace: true}\n"
    )
    assert any("reach nobody" in a for a in advice)


def test_documentation_ranges() -> None:
    assert is_documentation_address("192.0.2.7") and is_documentation_address("2001:db8::1")
    assert not is_documentation_address("10.0.0.1") and not is_documentation_address("9.9.9.9")
    assert is_documentation_name("shop.example.com.") and is_documentation_name("example.org")
    assert not is_documentation_name("notexample.com") and not is_documentation_name("shop.test")


def test_validate_json_reports_errors_and_warnings(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", GOOD_SITE.replace("port: 1", "port: one"))
    proc = failover("validate", "--json", config=bad)
    assert proc.returncode == 2 and proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and doc["valid"] is False
    (error,) = doc["errors"]
    assert error["file"] == str(bad) and error["line"] == 6
    assert error["key"] == "sites.shop.checks[0].port"
    assert error["message"] == "expected a whole number, got 'one'"

    missing = failover("validate", "--json", config=tmp_path / "nope.yaml")
    assert missing.returncode == 2 and json.loads(missing.stdout)["errors"]

    good = write(tmp_path / "good.yaml", GOOD_SITE)
    proc = failover("validate", "--json", config=good)
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["valid"] is True and doc["errors"] == []
    assert any("no notification target" in w["message"] for w in doc["warnings"])
    text = failover("validate", config=good)
    assert (
        text.returncode == 0
        and "warning: " in text.stderr
        and "no notification target" in text.stderr
    )


def test_check_logs_config_warnings_once_per_change(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "state: s.db\n" + GOOD_SITE)
    first = failover("check", config=config)
    assert first.returncode == 0 and "no notification target" in first.stderr
    again = failover("check", config=config)
    assert again.returncode == 0 and "no notification target" not in again.stderr
    config.write_text(config.read_text() + "observation_retention: 30d\n")
    changed = failover("check", config=config)
    assert "no notification target" in changed.stderr
    # interactive commands still say it
    assert "no notification target" in failover("validate", config=config).stderr
