"""`failover --help` (target < 0.25 s) and `failover status` (target < 0.5 s), wall time.

status runs against a state file holding six hours of history for 10 sites at a 10 s
interval (about 86,000 probe rows), so that it measures real queries, not an empty database.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, summary

RUNS = 20
ROUNDS = 2160  # six hours of rounds at a 10 s interval


def make_state(tmp: Path) -> Path:
    from failover.config.load import parse_config
    from failover.notify import Notifier
    from failover.store import Store
    from failover.watch.probes.result import ProbeResult
    from failover.watch.round import record_round

    sites = "\n".join(
        f"""  site{i}:
    hostname: site{i}.test
    endpoints:
      primary: {{address: 127.0.1.{i + 1}}}
      standby: {{address: 127.0.2.{i + 1}}}
    checks: [{{type: http, port: 8080, timeout: 2s}}, {{type: tcp, port: 22, timeout: 2s}}]
    policy: {{interval: 10s, down_after: 30s, up_after: 30s}}"""
        for i in range(10)
    )
    config_path = tmp / "failover.yaml"
    config_path.write_text(f"state: state.db\nsites:\n{sites}\n")
    config = parse_config(config_path.read_text(), str(config_path)).config
    store = Store.open(tmp / "state.db", lock=True)
    notifier = Notifier([])
    start = time.time() - ROUNDS * 10
    ok = ProbeResult("http:8080", True, 3.0, "HTTP 200 in 3 ms")
    tcp = ProbeResult("tcp:22", True, 1.0, "TCP connect in 1 ms")
    for n in range(ROUNDS):
        per = {(s, e): [ok, tcp] for s in config.sites for e in ("primary", "standby")}
        record_round(config, store, notifier, start + n * 10, 0.01, [], per)
    store.close()
    return config_path


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - t0


def main() -> None:
    exe = [sys.executable, "-m", "failover"]
    with tempfile.TemporaryDirectory() as d:
        print("building a state file with six hours of history for 10 sites ...", file=sys.stderr)
        config = make_state(Path(d))
        help_times = [timed([*exe, "--help"]) for _ in range(RUNS)]
        status_times = [timed([*exe, "--config", str(config), "status"]) for _ in range(RUNS)]
        json_times = [
            timed([*exe, "--config", str(config), "status", "--json"]) for _ in range(RUNS)
        ]
    print("| command | runs | wall time | target |")
    print("|---|---|---|---|")
    print(f"| `failover --help` | {RUNS} | {summary(help_times)} | < 250 ms |")
    print(
        f"| `failover status` (10 sites, 6 h of history) | {RUNS} | {summary(status_times)} "
        "| < 500 ms |"
    )
    print(f"| `failover status --json` | {RUNS} | {summary(json_times)} | < 500 ms |")


if __name__ == "__main__":
    main()
