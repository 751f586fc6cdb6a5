"""The shipped alert rules, checked by Prometheus' own promtool: they load, and each
alert fires on the story it is for (examples/prometheus/failover-rules.test.yml)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import require_binary

pytestmark = pytest.mark.integration

RULES_DIR = Path(__file__).resolve().parents[3] / "examples" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES_DIR,
    )


def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", "failover-rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_every_alert_fires_on_its_story() -> None:
    done = promtool("test", "rules", "failover-rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
