"""The README's first command, as a user runs it: the demonstration of the whole story on
the lab (`python -m examples.demo`, which examples/demo/run.sh runs after the setup)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import require_binary, require_root
from tests.support.cli import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


def test_the_demonstration_runs_the_whole_story() -> None:
    require_root()
    for binary in ("unshare", "nsenter", "nft", "sshd", "ssh", "restic", "pdns_server"):
        require_binary(binary)
    proc = subprocess.run(
        [sys.executable, "-m", "examples.demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for line in (
        "drill passed",
        "now resolves to the standby",
        "[shop] failover to standby complete",
        "done: the lab is removed",
    ):
        assert line in out, f"missing {line!r} in:\n{out[-4000:]}"
    assert "internal error" not in out and "Traceback" not in out, out[-4000:]
