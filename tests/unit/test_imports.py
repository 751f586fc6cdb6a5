"""What each entry point imports (issue 15: every command pays only for what it uses),
checked in a fresh interpreter. Not timed: the benchmarks in tests/bench measure the time.

- `failover --help` loads no pydantic, YAML, SDK, sqlite3 or asyncio, and no command module;
- a command imports its own module only (`failover dns ...` does not import backup's);
- a DNS provider's adapter brings its own SDK and not the others' (a libcloud site loads no
  boto3/botocore and only libcloud's PowerDNS driver; an RFC 2136 site no requests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from failover.cli.app import COMMANDS, command_named

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["pydantic", "yaml", "boto3", "botocore", "libcloud", "dns", "requests", "urllib3"]


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _top(modules: set[str]) -> set[str]:
    return {m.partition(".")[0] for m in modules}


def test_help_imports_no_pydantic_yaml_sdk_nor_state() -> None:
    modules = _modules_after(
        """
        import contextlib, io
        from failover.cli.app import run
        with contextlib.redirect_stdout(io.StringIO()):
            assert run(["--help"]) == 0
        """
    )
    assert not _top(modules) & {*HEAVY, "sqlite3", "asyncio", "ssl"}
    assert "failover.config.models" not in modules


def test_importing_the_app_imports_no_command_module() -> None:
    modules = _modules_after("import failover.cli.app")
    assert not {m for m in modules if m.startswith("failover.cli.") and m != "failover.cli.app"} - {
        "failover.cli.context",
        "failover.cli.conventions",  # the root group's class: no command in it
    }
    assert not _top(modules) & set(HEAVY)


def test_a_command_imports_its_own_module_only() -> None:
    modules = _modules_after(
        """
        import contextlib, io
        from failover.cli.app import run
        with contextlib.redirect_stdout(io.StringIO()):
            assert run(["dns", "--help"]) == 0
        """
    )
    assert "failover.cli.dns" in modules
    assert not {"failover.cli.backup", "failover.cli.migrate", "failover.cli.report"} & modules


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["--config", "x.yaml", "dns", "set", "shop"], "dns"),
        (["-c", "x.yaml", "--debug", "status", "--json"], "status"),
        (["--log-format", "json", "-q", "check"], "check"),
        (["--help"], None),
        ([], None),
        (["--", "check"], "check"),
    ],
)
def test_the_command_is_found_after_the_global_options(argv: list[str], name: str | None) -> None:
    assert command_named(argv) == name
    assert name is None or name in COMMANDS


SITE = {
    "hostname": "shop.example.com",
    "endpoints": {"primary": {"address": "192.0.2.10"}},
    "checks": [{"type": "tcp", "port": 80}],
    "dns": {
        "provider": "main",
        "zone": "example.com",
        "records": [{"name": "shop.example.com", "type": "A"}],
    },
}
PROVIDERS = {
    "libcloud": {
        "type": "libcloud",
        "driver": "powerdns",
        "key": "${KEY}",
        "args": {"host": "127.0.0.1", "port": 9, "secure": False},
    },
    "route53": {
        "type": "route53",
        "access_key_id": "${KEY}",
        "secret_access_key": "${KEY}",
        "endpoint_url": "http://127.0.0.1:9",
    },
    "rfc2136": {"type": "rfc2136", "server": "127.0.0.1", "port": 9},
}
# What the adapter needs to build its client, without a request (nothing listens on :9).
CLIENT = {"libcloud": "_driver", "route53": "_client", "rfc2136": None}
NOT_LOADED = {
    "libcloud": {"boto3", "botocore", "dns"},
    "route53": {"libcloud", "requests", "dns"},
    "rfc2136": {"libcloud", "requests", "boto3", "botocore", "urllib3"},
}


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_a_dns_provider_loads_its_own_sdk_only(kind: str) -> None:
    config = {"dns_providers": {"main": PROVIDERS[kind]}, "sites": {"shop": SITE}}
    client = CLIENT[kind]
    modules = _modules_after(
        f"""
        import json
        from failover.config.load import parse_config
        from providers.dns import make_provider
        loaded = parse_config(json.dumps({config!r}), "f.yaml", env={{"KEY": "secret-key"}})
        provider = make_provider("main", loaded.config.dns_providers["main"])
        {f"provider.{client}()" if client else "pass"}
        """
    )
    assert not _top(modules) & NOT_LOADED[kind]
    if kind == "libcloud":
        assert "libcloud.dns.drivers.powerdns" in modules
        others = {
            m
            for m in modules
            if m.startswith(("libcloud.dns.drivers.", "libcloud.compute.drivers."))
        }
        assert others == {"libcloud.dns.drivers.powerdns"}


def test_the_command_line_skips_pydantic_plugin_discovery(tmp_path: Path) -> None:
    """pydantic's plugin loader reads every distribution's entry points (importlib.metadata)
    before its first validator; the failover command has none to find."""
    config = tmp_path / "failover.yaml"
    site = {k: v for k, v in SITE.items() if k != "dns"}
    config.write_text(json.dumps({"state": str(tmp_path / "state.db"), "sites": {"shop": site}}))
    modules = _modules_after(
        f"""
        import contextlib, io
        from failover.__main__ import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["-c", {str(config)!r}, "validate"]) == 0
        """
    )
    assert "failover.config.models" in modules
    assert "importlib.metadata" not in modules
