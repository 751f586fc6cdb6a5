"""Config loading: every problem at once with file, line and key; secrets by reference;
the committed JSON schema and sample configs stay true to the models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from failover.config.load import parse_config
from failover.config.schema import schema_text
from failover.config.types import Secret, parse_duration
from failover.errors import ConfigError
from failover.sample import sample_text

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 192.0.2.1}
    checks:
      - {type: tcp, port: 22}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml", env=env or {})
    return info.value.problems


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(MINIMAL, "f.yaml", env={}).config
    site = config.sites["shop"]
    assert site.initial_active == "primary"
    assert site.policy.interval == 30 and site.policy.down_after == 180
    assert site.policy.auto_failover is False and site.policy.auto_failback is False


def test_all_problems_are_reported_at_once_in_line_order() -> None:
    text = (
        MINIMAL.replace("address: 192.0.2.1", "address: nope, colour: red")
        + """\
    policy:
      interval: 0
      cooldown: later
extra: 1
"""
    )
    found = problems(text)
    assert found[0].startswith("f.yaml:5: sites.shop.endpoints.primary.address:")
    assert any(
        p.startswith("f.yaml:5: sites.shop.endpoints.primary.colour: unknown key") for p in found
    )
    assert any(
        p.startswith("f.yaml:10: sites.shop.policy.cooldown: expected a duration") for p in found
    )
    assert any(p.startswith("f.yaml:11: extra: unknown key") for p in found)
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)


def test_duplicate_keys_and_merge_keys_are_errors() -> None:
    assert problems("sites: {}\nsites: {}\n") == ["f.yaml:2: sites: duplicate key"]


def test_checks_must_finish_within_the_interval() -> None:
    text = MINIMAL.replace("{type: tcp, port: 22}", "{type: tcp, port: 22, timeout: 30s}")
    assert any("shorter than policy.interval" in p for p in problems(text))


def test_canaries_need_a_host_and_site_checks_must_not_have_one() -> None:
    text = "canaries:\n  - {type: tcp, port: 53}\n" + MINIMAL
    assert any(
        p.startswith("f.yaml:2: canaries[0].host: required key is missing") for p in problems(text)
    )
    text = MINIMAL.replace("{type: tcp, port: 22}", "{type: tcp, port: 22, host: 192.0.2.9}")
    assert any("`host` is for canaries" in p for p in problems(text))


@pytest.mark.parametrize(
    "value,seconds",
    [("90s", 90), ("5m", 300), ("1.5h", 5400), (12, 12), ("2d", 172800), ("250ms", 0.25)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def test_secret_from_env_and_file_never_shows_its_value(tmp_path: Path) -> None:
    secret_file = tmp_path / "url"
    secret_file.write_text("json://127.0.0.1:9/hook\n")
    secret_file.chmod(0o644)
    text = (
        f"""\
notify:
  - url: ${{HOOK}}
  - url: file:{secret_file}
"""
        + MINIMAL
    )
    loaded = parse_config(text, "f.yaml", env={"HOOK": "json://127.0.0.1:8/x"})
    first, second = (t.url for t in loaded.config.notify)
    assert isinstance(first, Secret) and first.reveal() == "json://127.0.0.1:8/x"
    assert second.reveal() == "json://127.0.0.1:9/hook"
    assert "127.0.0.1" not in repr(loaded.config) and "127.0.0.1" not in str(first)
    assert any("readable by others" in w for w in loaded.warnings)


def test_missing_secret_file_is_a_located_error(tmp_path: Path) -> None:
    text = f"notify:\n  - url: file:{tmp_path}/none\n" + MINIMAL
    (p,) = problems(text)
    assert p.startswith("f.yaml:2: notify[0].url: cannot read secret file")


def test_status_codes() -> None:
    config = parse_config(
        MINIMAL.replace(
            "{type: tcp, port: 22}", "{type: https, expect_status: [200, '301-302', 4xx]}"
        ),
        "f.yaml",
        env={},
    ).config
    check = config.sites["shop"].checks[0]
    assert [check.status_ok(s) for s in (200, 201, 301, 302, 303, 404, 500)] == [
        True,
        False,
        True,
        True,
        False,
        True,
        False,
    ]


def test_committed_json_schema_is_up_to_date() -> None:
    committed = (REPO / "configs" / "failover.schema.json").read_text()
    assert committed == schema_text(), (
        "configs/failover.schema.json is out of date: "
        "python3 -m failover.config.schema > configs/failover.schema.json"
    )


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_sample_configs_validate(path: Path) -> None:
    env = {k: "placeholder-for-validation" for k in _env_refs(path.read_text())}
    parse_config(path.read_text(), str(path), env={**os.environ, **env}, base_dir=path.parent)


def test_init_sample_validates() -> None:
    parse_config(sample_text(), "sample.yaml", env={})


def _env_refs(text: str) -> set[str]:
    import re

    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def _validate_part(block: str, tmp_path: Path, secret: Path) -> None:
    """A README fragment (a few keys of a config): merged into a minimal config of one site,
    it validates."""
    import re

    import yaml

    part = yaml.safe_load(re.sub(r"file:[^\s,}\]\"']+", f"file:{secret}", block))
    base: dict[str, Any] = {
        "sites": {
            "shop": {
                "hostname": "shop.test",
                "endpoints": {"primary": {"address": "127.0.0.1"}},
                "checks": [{"type": "tcp", "port": 22}],
            }
        }
    }
    if "backup" in str(part):
        base["sites"]["shop"]["backup"] = {
            "repository": "/tmp/r",
            "password": f"file:{secret}",
            "paths": ["/srv"],
        }
    for key, value in part.items():
        if key == "sites":
            for site, extra in value.items():
                for k, v in extra.items():
                    if isinstance(v, dict) and isinstance(base["sites"][site].get(k), dict):
                        base["sites"][site][k].update(v)
                    else:
                        base["sites"][site][k] = v
        else:
            base[key] = value
    text = yaml.safe_dump(base)
    env = {
        k: "https://placeholder.invalid/ping" if k.endswith("URL") else "x"
        for k in _env_refs(block)
    }
    parse_config(text, "README.md", env=env)


def test_readme_example_config_validates(tmp_path: Path) -> None:
    import re

    secret = tmp_path / "secret"
    secret.write_text("placeholder\n")
    secret.chmod(0o600)
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README shows an example config"
    for block in blocks:
        if block.startswith("# part of a config"):
            _validate_part(block, tmp_path, secret)
            continue
        env = {
            k: "https://placeholder.invalid/ping" if k.endswith("URL") else "placeholder"
            for k in _env_refs(block)
        }
        block = re.sub(r"file:[^\s,}\]\"']+", f"file:{secret}", block)
        parse_config(block, "README.md", env=env)
