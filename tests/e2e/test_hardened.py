"""The agent still works under the shipped unit's hardening, on the lab: the same limits
systemd would set (no capability but CAP_NET_RAW, no new privileges, the whole file system
read-only except the state's and restic's directories) are applied with setpriv and a
private read-only mount namespace, then a round with HTTPS, TCP and ICMP (raw socket)
checks, a backup over SSH with restic, and `doctor` all succeed."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import require_binary
from tests.support.cli import REPO
from tests.support.lab import Lab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

UNIT = REPO / "examples" / "systemd" / "failover-agent.service"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab()


def hardened(lab: Lab, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`failover --config CONFIG ARGS` as the unit runs it: capabilities bounded to
    CAP_NET_RAW (ambient, as AmbientCapabilities=), no_new_privs, / read-only but for the
    lab's directory (the state's place: StateDirectory=) and a cache (CacheDirectory=)."""
    unit = UNIT.read_text()
    assert "CapabilityBoundingSet=CAP_NET_RAW" in unit and "ProtectSystem=strict" in unit
    setpriv = require_binary("setpriv")
    unshare = require_binary("unshare")
    cache = lab.dir / "cache"
    cache.mkdir(exist_ok=True)
    command = " ".join(
        shlex.quote(a)
        for a in [
            setpriv,
            "--bounding-set=-all,+net_raw",
            "--inh-caps=-all,+net_raw",
            "--ambient-caps=-all,+net_raw",
            "--no-new-privs",
            "--",
            sys.executable,
            "-m",
            "failover",
            "--config",
            str(config),
            *args,
        ]
    )
    script = (
        "set -e\n"
        f"mount --bind {shlex.quote(str(lab.dir))} {shlex.quote(str(lab.dir))}\n"
        "mount -o remount,bind,ro /\n"
        f"exec {command}\n"
    )
    env = {
        **lab.env(),
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "XDG_CACHE_HOME": str(cache),
        "RESTIC_CACHE_DIR": str(cache / "restic"),
    }
    return subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd="/",
    )


def test_the_agent_works_under_the_units_hardening(lab: Lab) -> None:
    site = lab.config_dict()["sites"]["shop"]
    checks = [*site["checks"], {"type": "icmp", "count": 2, "timeout": "0.8s"}]
    config = lab.write_config(checks=checks)

    # the limits hold: writing outside the state's directory fails, ping needs no more
    probe = hardened(lab, config, "validate")
    assert probe.returncode == 0, probe.stderr

    round_ = hardened(lab, config, "check", "--json")
    assert round_.returncode == 0, round_.stderr
    result = json.loads(round_.stdout)
    for endpoint in result["endpoints"]:
        assert endpoint["ok"], endpoint
        assert {c["check"] for c in endpoint["checks"]} == {"https", "tcp:22", "icmp"}
    icmp = [c for e in result["endpoints"] for c in e["checks"] if c["check"] == "icmp"]
    assert all(c["ok"] for c in icmp)

    backup = hardened(lab, config, "backup", "run", "--json")
    assert backup.returncode == 0, backup.stderr
    assert json.loads(backup.stdout)["results"][0]["ok"]

    doctor = hardened(lab, config, "doctor", "--json")
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0, [c for c in report["checks"] if c["ok"] is False]


def test_the_limits_are_real(lab: Lab) -> None:
    # the same wrapper, a command that tries what the unit forbids
    config = lab.write_config()
    outside = Path("/var/tmp") / f"fot-hardened-{lab.id}"
    proc = hardened(lab, config, "init", str(outside))
    assert proc.returncode != 0 and not outside.exists()
    assert "Read-only file system" in proc.stderr or "read-only" in proc.stderr.lower()
