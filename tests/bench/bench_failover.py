"""Outage to every authoritative nameserver serving the standby, with a warm standby.

Target: at most down_after + 2 intervals + 2 s. Each run builds a fresh lab (two namespace
VPSes, PowerDNS), starts the agent, cuts the primary off with nftables at a known moment and
polls PowerDNS every 20 ms until it answers the standby's address. Needs root.

Usage: python3 tests/bench/bench_failover.py [RUNS]   (default 3 per policy)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

POLICIES = [("1s", "3s", 1.0, 3.0), ("2s", "6s", 2.0, 6.0)]


def one_run(interval: str, down_after: str, settle: float = 0.0) -> float:
    """Seconds from the cut to DNS serving the standby; `settle`: wait this long once both
    endpoints are up before cutting (a random offset into the agent's round)."""
    from tests.support.lab import Lab

    with Lab(storage=False) as lab, tempfile.TemporaryDirectory() as d:
        config = lab.write_config(
            Path(d) / "failover.yaml",
            state=str(Path(d) / "state.db"),
            backup=None,
            failover={"standby": "warm", "after_restore": []},
            policy={"interval": interval, "down_after": down_after, "up_after": interval},
        )
        env = {**os.environ, **lab.env()}
        agent = subprocess.Popen(
            [sys.executable, "-m", "failover", "--config", str(config), "agent"],
            cwd=REPO,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:  # both endpoints up before the cut
                out = subprocess.run(
                    [sys.executable, "-m", "failover", "--config", str(config), "status", "--json"],
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                ).stdout
                if out.count('"health": "up"') >= 2:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("endpoints never came up")
                time.sleep(0.5)
            time.sleep(settle)
            cut = time.monotonic()
            lab.primary.blackhole()
            while lab.dns_answer() != [lab.standby.ip]:
                if time.monotonic() - cut > 120:
                    raise SystemExit("no failover within 120 s")
                time.sleep(0.02)
            return time.monotonic() - cut
        finally:
            agent.terminate()
            agent.wait(timeout=30)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(
        "| interval | down_after | target (down_after + 2 intervals + 2 s) | runs | "
        "cut to all authoritative servers serving the standby (median / max) |"
    )
    print("|---|---|---|---|---|")
    for interval, down_after, i_s, d_s in POLICIES:
        times = [one_run(interval, down_after) for _ in range(runs)]
        target = d_s + 2 * i_s + 2
        print(
            f"| {interval} | {down_after} | {target:.0f} s | {runs} | "
            f"{statistics.median(times):.2f} s / {max(times):.2f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
