"""Agent resident memory (target < 60 MB) and CPU (target < 1% of a core) with 10 sites at
a 10 s interval, each with a primary and a standby probed over HTTP and TCP on loopback.

Usage: python3 tests/bench/bench_agent.py [SECONDS]   (default 120)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import REPO, cpu_seconds, rss_kib


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "index.html").write_text("ok")
        servers = []
        for i in range(20):
            host = f"127.0.{3 + i // 10}.{1 + i % 10}"
            server = ThreadingHTTPServer((host, 0), partial(Quiet, directory=str(tmp)))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        sites = "\n".join(
            f"""  site{i}:
    hostname: site{i}.test
    endpoints:
      primary: {{address: {servers[2 * i].server_address[0]}}}
      standby: {{address: {servers[2 * i + 1].server_address[0]}}}
    checks:
      - {{type: http, port: {servers[2 * i].server_address[1]}, timeout: 2s}}
      - {{type: tcp, port: {servers[2 * i + 1].server_address[1]}, timeout: 2s}}
    policy: {{interval: 10s, down_after: 30s, up_after: 30s}}"""
            for i in range(10)
        )
        config = tmp / "failover.yaml"
        config.write_text(
            f"state: state.db\ncanaries:\n  - {{type: tcp, host: 127.0.0.1, port: "
            f"{servers[0].server_address[1]}, timeout: 2s}}\nsites:\n{sites}\n"
        )
        agent = subprocess.Popen(
            [sys.executable, "-m", "failover", "--config", str(config), "agent"],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(5)  # start-up and the first round
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        peak = 0
        while time.monotonic() - t0 < duration:
            peak = max(peak, rss_kib(agent.pid))
            time.sleep(1)
        cpu = cpu_seconds(agent.pid) - cpu0
        wall = time.monotonic() - t0
        agent.terminate()
        agent.wait(timeout=30)
        for server in servers:
            server.shutdown()
    print("| agent, 10 sites x 2 endpoints x 2 checks, 10 s interval | measured | target |")
    print("|---|---|---|")
    print(f"| peak resident memory over {wall:.0f} s | {peak / 1024:.1f} MB | < 60 MB |")
    print(f"| CPU | {100 * cpu / wall:.2f}% of a core | < 1% |")


if __name__ == "__main__":
    main()
