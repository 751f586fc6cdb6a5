"""`failover dns show|set` as a subprocess (python3 -m failover) with a config file the test
writes, against the real servers: output, exit codes, no tracebacks, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.dns.conftest import Backend

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[3]


def run(
    backend: Backend, config: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "failover", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=backend.subprocess_env(),
        cwd=ROOT,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_set_plan_apply_again_and_back(backend: Backend, tmp_path: Path) -> None:
    config = backend.write(tmp_path)
    dry = run(backend, config, "dns", "set", "shop", "--to", "standby")
    assert dry.returncode == 0, dry.stderr
    assert "shop.example.com A: 192.0.2.10 ttl 60 [primary] -> 198.51.100.20 ttl 60" in dry.stdout
    assert "dry run" in dry.stdout
    assert backend.server.get_records("shop.example.com", "A")[0] == ["192.0.2.10"]

    done = run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes")
    assert done.returncode == 0, done.stderr
    assert "all serve the new values" in done.stdout
    assert f"ok  {backend.nameserver} shop.example.com A: 198.51.100.20 ttl 60" in done.stdout
    assert backend.server.get_records("shop.example.com", "A")[0] == ["198.51.100.20"]

    again = run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert "all serve the new values" in again.stdout  # still verified

    back = run(backend, config, "dns", "set", "shop", "--to", "primary", "--yes", "--json")
    assert back.returncode == 0, back.stderr
    data = json.loads(back.stdout)
    assert data["plan"]["from"] == "standby" and data["apply"]["outcome"] == "applied"
    assert data["verify"]["ok"] is True
    assert backend.server.get_records("shop.example.com", "A")[0] == ["192.0.2.10"]

    shown = run(backend, config, "dns", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    entry = json.loads(shown.stdout)["sites"][0]
    assert {r["endpoint"] for r in entry["records"]} == {"primary"}
    assert entry["last_switch"]["to_endpoint"] == "primary"
    assert entry["last_switch"]["changes"][0]["old_values"] == ["198.51.100.20"]


def test_hand_change_exit_3_then_force(bind_backend: Backend, tmp_path: Path) -> None:
    backend = bind_backend
    backend.server.set_records("shop.example.com", "A", ["203.0.113.9"], 60)
    config = backend.write(tmp_path)
    refused = run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes")
    assert refused.returncode == 3
    assert (
        "shop.example.com A: 203.0.113.9 ttl 60 [unknown value] -> 198.51.100.20" in refused.stdout
    )
    assert refused.stderr.strip().count("\n") == 0  # one line
    assert "--force" in refused.stderr
    assert backend.server.get_records("shop.example.com", "A")[0] == ["203.0.113.9"]

    shown = run(backend, config, "dns", "show", "shop")
    assert shown.returncode == 0
    assert "shop.example.com A: 203.0.113.9 ttl 60 -> unknown value" in shown.stdout
    assert "! TTL" not in shown.stdout
    backend.server.set_records("www.example.com", "A", ["192.0.2.10"], 3600)
    shown = run(backend, config, "dns", "show", "shop")
    assert "! TTL 3600s is longer than max_ttl 300s" in shown.stdout

    forced = run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert backend.server.get_records("shop.example.com", "A")[0] == ["198.51.100.20"]


def test_wrong_credentials_one_line_exit_1_no_secret(pdns_backend: Backend, tmp_path: Path) -> None:
    backend = pdns_backend
    backend.env["PDNS_API_KEY"] = "wrong-key-do-not-print"
    config = backend.write(tmp_path)
    proc = run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "authentication failed" in lines[0], proc.stderr
    assert "wrong-key-do-not-print" not in proc.stderr + proc.stdout
    state = tmp_path / "state.db"
    if state.exists():
        assert b"wrong-key-do-not-print" not in state.read_bytes()


def test_missing_zone_and_unreachable(bind_backend: Backend, tmp_path: Path) -> None:
    backend = bind_backend
    data = backend.config(
        tmp_path, zone="other.test", records=[{"name": "shop.other.test", "type": "A", "ttl": 60}]
    )
    config = backend.write(tmp_path, data)
    proc = run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes")
    assert proc.returncode == 1
    assert "does not serve the zone other.test" in proc.stderr

    config = backend.write(tmp_path)
    backend.server.stop()
    proc = run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes")
    assert proc.returncode == 1
    assert "refused" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_config_errors_exit_2(bind_backend: Backend, tmp_path: Path) -> None:
    backend = bind_backend
    data = backend.config(tmp_path)
    data["sites"]["shop"]["dns"]["provider"] = "nope"
    proc = run(backend, backend.write(tmp_path, data), "dns", "show")
    assert proc.returncode == 2
    assert "sites.shop.dns.provider: 'nope' is not one of dns_providers (main)" in proc.stderr
    data = backend.config(tmp_path, provider={**backend.provider, "key_secret": "inline-value"})
    proc = run(backend, backend.write(tmp_path, data), "dns", "show")
    assert proc.returncode == 2 and "must be a reference" in proc.stderr
    assert "inline-value" not in proc.stderr
    proc = run(backend, backend.write(tmp_path), "dns", "set", "shop", "--to", "nowhere")
    assert proc.returncode == 2 and "no endpoint 'nowhere'" in proc.stderr


def test_undo_from_the_command_line(bind_backend: Backend, tmp_path: Path) -> None:
    backend = bind_backend
    config = backend.write(tmp_path)
    assert run(backend, config, "dns", "set", "shop").returncode == 2  # neither --to nor --undo
    assert run(backend, config, "dns", "set", "shop", "--to", "standby", "--yes").returncode == 0
    dry = run(backend, config, "dns", "set", "shop", "--undo")
    assert dry.returncode == 0 and "point DNS at primary (now standby)" in dry.stdout
    done = run(backend, config, "dns", "set", "shop", "--undo", "--yes")
    assert done.returncode == 0, done.stderr
    assert backend.server.get_records("shop.example.com", "A")[0] == ["192.0.2.10"]
