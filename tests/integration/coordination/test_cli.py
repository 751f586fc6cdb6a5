"""`failover coordination selftest` and the agent's start against real engines: a bucket
that honours conditional writes passes; one behind a front that strips the conditional
headers is refused with a clear message, and the agent will not start on it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.coordination.conftest import BUCKET
from tests.support import TEST_AWS_ENV
from tests.support.cli import failover
from tests.support.s3_strip_proxy import StrippingS3Proxy
from tests.support.storage_servers import SeaweedFS

pytestmark = pytest.mark.integration


def _config(tmp: Path, endpoint: str) -> Path:
    data: dict[str, Any] = {
        "state": str(tmp / "state.db"),
        "coordination": {
            "engine": "s3",
            "watchers": {"home": {}, "vps": {}, "cheap": {"can_act": False}},
            "lease_ttl": "10s",
            "selftest_writers": 6,
            "s3": {
                "bucket": BUCKET,
                "prefix": f"cli-{uuid.uuid4().hex[:8]}/",
                "endpoint_url": endpoint,
                "access_key_id": "${AWS_ACCESS_KEY_ID}",
                "secret_access_key": "${AWS_SECRET_ACCESS_KEY}",
                "timeout": "3s",
            },
        },
        "sites": {
            "shop": {
                "hostname": "shop.example.test",
                "endpoints": {"primary": {"address": "127.0.0.1"}},
                "checks": [{"type": "tcp", "port": 9, "timeout": "0.5s"}],
                "policy": {"interval": "1s"},
            }
        },
    }
    path = tmp / "failover.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


def test_selftest_passes_on_seaweedfs(seaweed: SeaweedFS, tmp_path: Path) -> None:
    config = _config(tmp_path, seaweed.endpoint)
    proc = failover("coordination", "selftest", config=config, env=TEST_AWS_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "6 concurrent create-if-absent: exactly one wins: 1 won" in proc.stdout
    assert "honours conditional writes" in proc.stdout
    data = json.loads(
        failover("coordination", "selftest", "--json", config=config, env=TEST_AWS_ENV).stdout
    )
    assert data["ok"] is True and len(data["checks"]) == 8


def test_a_bucket_that_ignores_conditional_headers_is_refused(
    seaweed: SeaweedFS, tmp_path: Path
) -> None:
    with StrippingS3Proxy(
        seaweed.endpoint, TEST_AWS_ENV["AWS_ACCESS_KEY_ID"], TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"]
    ) as proxy:
        config = _config(tmp_path, proxy.endpoint)
        proc = failover("coordination", "selftest", config=config, env=TEST_AWS_ENV)
        assert proc.returncode == 1
        assert "FAIL create-if-absent refuses an existing key: overwrote it" in proc.stdout
        error = proc.stderr.strip().splitlines()[-1]
        assert "does not honour conditional writes" in error and "Traceback" not in proc.stderr
        assert TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
        # the agent proves the engine at start, and refuses to start on this one
        agent = failover(
            "--watcher",
            "home",
            "agent",
            "--max-rounds",
            "1",
            config=config,
            env=TEST_AWS_ENV,
            timeout=120,
        )
        assert agent.returncode == 1, agent.stdout + agent.stderr
        assert "refusing to coordinate through it" in agent.stderr
        assert not (tmp_path / "state.db").exists() or "round" not in agent.stderr


def test_the_agent_needs_to_know_which_watcher_it_is(seaweed: SeaweedFS, tmp_path: Path) -> None:
    config = _config(tmp_path, seaweed.endpoint)
    proc = failover("agent", "--max-rounds", "1", config=config, env=TEST_AWS_ENV)
    assert proc.returncode == 2
    assert "this machine's watcher name is not set: pass --watcher NAME" in proc.stderr
    (tmp_path / "watcher.yaml").write_text("watcher: vps\n")
    proc = failover("check", "--json", config=config, env=TEST_AWS_ENV)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(failover("status", "--json", config=config, env=TEST_AWS_ENV).stdout)
    group = status["sites"]["shop"]["group"]
    assert group["watcher"] == "vps" and group["leader"] == "vps" and group["epoch"] >= 1
    assert group["endpoints"]["primary"]["watchers"][2]["watcher"] == "vps"
    # the report says which watcher of the group saw it (several may share a host)
    proc = failover("report", "--format", "json", config=config, env=TEST_AWS_ENV)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["watcher"].startswith("watcher vps on "), proc.stdout[:300]
    proc = failover("report", config=config, env=TEST_AWS_ENV)
    assert "Probed from watcher vps on " in proc.stdout, proc.stdout
