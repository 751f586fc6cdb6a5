"""compute_templates in the config: defaults, validation with file:line:key, secrets by
reference, and no libcloud import when the config is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from failover.config.load import LoadedConfig, parse_config
from failover.errors import ConfigError

SITES = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 192.0.2.1}
    checks:
      - {type: tcp, port: 22}
"""

TEMPLATE = """\
compute_templates:
  small:
    driver: EC2
    key: ${KEY_ID}
    secret: ${KEY_SECRET}
    size: t3.small
    image: ami-0123456789abcdef0
"""

ENV = {"KEY_ID": "AKIAEXAMPLE", "KEY_SECRET": "s3cret-value"}


def load(extra: str = "", env: dict[str, str] | None = None) -> LoadedConfig:
    return parse_config(TEMPLATE + extra + SITES, "f.yaml", env=ENV if env is None else env)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text + SITES, "f.yaml", env=ENV)
    return info.value.problems


def test_defaults() -> None:
    template = load().config.compute_templates["small"]
    assert template.driver == "ec2"  # lower-cased
    assert template.key.reveal() == "AKIAEXAMPLE"
    assert template.key.source == "${KEY_ID}"
    assert template.address == "public"
    assert template.boot_timeout == 600 and template.ssh_timeout == 300
    assert template.ssh.user == "root" and template.ssh.port == 22
    assert template.location is None and template.ssh_key is None
    assert template.node_name("shop") == "failover-shop"


def test_all_fields() -> None:
    template = load("""\
    args: {region: eu-central-1, host: 127.0.0.1, port: 5000, secure: false}
    location: eu-central-1a
    ssh_key: failover
    extra: {ex_subnet: subnet-1, ex_security_group_ids: [sg-1], ex_assign_public_ip: true}
    name: "{site}-new"
    tags: {owner: ops}
    address: private
    ssh: {user: admin, port: 2222, key: /k, known_hosts: /kh, options: [ConnectTimeout=5]}
    boot_timeout: 5m
    ssh_timeout: 90s
    poll_interval: 2s
""").config.compute_templates["small"]
    assert template.args["port"] == 5000 and template.args["secure"] is False
    assert template.extra["ex_security_group_ids"] == ["sg-1"]
    assert template.node_name("shop") == "shop-new"
    assert template.boot_timeout == 300 and template.ssh_timeout == 90
    assert str(template.ssh.known_hosts) == "/kh"


def test_no_templates_is_fine() -> None:
    assert parse_config(SITES, "f.yaml", env={}).config.compute_templates == {}


def test_inline_credentials_are_refused() -> None:
    (p,) = problems(TEMPLATE.replace("${KEY_ID}", "AKIAINLINE"))
    assert p.startswith("f.yaml:4: compute_templates.small.key:")
    assert "reference" in p
    assert "AKIAINLINE" not in p


def test_missing_environment_variable_is_located() -> None:
    with pytest.raises(ConfigError) as info:
        load(env={"KEY_ID": "x"})
    (p,) = info.value.problems
    assert p.startswith("f.yaml:5: compute_templates.small.secret:")
    assert "KEY_SECRET" in p


@pytest.mark.parametrize(
    ("line", "key", "needle"),
    [
        ("    address: elastic\n", "address", "public"),
        ("    bogus: 1\n", "bogus", "unknown key"),
        ("    boot_timeout: soon\n", "boot_timeout", "duration"),
        ("    name: 'bad name!'\n", "name", "server name"),
        ("    poll_interval: 0\n", "poll_interval", "more than 0"),
        ("    ssh: {host: 10.0.0.1}\n", "ssh.host", "unknown key"),
    ],
)
def test_invalid_fields_are_located(line: str, key: str, needle: str) -> None:
    (p,) = problems(TEMPLATE + line)
    assert p.startswith(f"f.yaml:8: compute_templates.small.{key}:"), p
    assert needle in p


def test_driver_names() -> None:
    for good in ("ec2", "digital_ocean", "DigitalOcean", "pkg.mod:Driver"):
        text = TEMPLATE.replace("driver: EC2", f"driver: {good}")
        parse_config(text + SITES, "f.yaml", env=ENV)
    (p,) = problems(TEMPLATE.replace("driver: EC2", "driver: 'no such'"))
    assert p.startswith("f.yaml:3: compute_templates.small.driver:")
    # The driver's existence is checked at use, not at load: an unknown name loads.
    parse_config(TEMPLATE.replace("driver: EC2", "driver: nosuchcloud") + SITES, "f.yaml", env=ENV)


def test_loading_a_config_with_templates_does_not_import_libcloud(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(TEMPLATE + SITES)
    code = (
        "import sys, os\n"
        "from failover.config.load import parse_config\n"
        f"parse_config(open({str(path)!r}).read(), 'f.yaml', env={ENV!r})\n"
        "import failover.runs.compute\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('libcloud', 'boto3', 'requests')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
