"""Agent resident memory (target <= 35 MB) and CPU (target < 1% of a core) with 10 sites at
a 10 s interval, each with a primary and a standby probed over HTTP and TCP on loopback;
and with --https N (target <= 80 MB for 1,000): N endpoints (N/2 sites of two) probed over
HTTPS with certificate verification at a 10 s interval, against one server process that
listens on N loopback addresses (tests/bench/bench_probes.py's). The agent is an installed
copy of this checkout (tests/bench/_common.installed_failover).

Usage: python3 tests/bench/bench_agent.py [SECONDS] [--https 1000]   (default 120 s)
"""

from __future__ import annotations

import argparse
import os
import subprocess
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


def watch(
    argv: list[str], duration: float, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """Run the agent for `duration` seconds after its first round: (peak RSS MB, CPU %, s)."""
    agent = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.DEVNULL, env=env)
    time.sleep(5)  # start-up and the first round
    cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
    peak = 0
    while time.monotonic() - t0 < duration:
        peak = max(peak, rss_kib(agent.pid))
        time.sleep(0.2)
    cpu = cpu_seconds(agent.pid) - cpu0
    wall = time.monotonic() - t0
    agent.terminate()
    agent.wait(timeout=30)
    return peak / 1024, 100 * cpu / wall, wall


def many(n: int, duration: float, python: str, scheme: str = "https") -> None:
    import bench_probes
    from _common import failover_bin

    from tests.support.webserver import TestCA

    bench_probes.raise_nofile(4 * n + 256)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ca = TestCA(tmp / "ca")
        issued = ca.issue(bench_probes.HOSTNAME, days=90)
        tls = (issued.cert, issued.key) if scheme == "https" else (None, None)
        server, port = bench_probes.start_server(n, 0.0, *tls)
        try:
            sites = "\n".join(
                f"""  site{i}:
    hostname: {bench_probes.HOSTNAME}
    endpoints:
      primary: {{address: {bench_probes.address(2 * i)}}}
      standby: {{address: {bench_probes.address(2 * i + 1)}}}
    checks: [{{type: {scheme}, port: {port}, timeout: 5s, expect_body: ok}}]
    policy: {{interval: 10s, down_after: 30s, up_after: 30s}}"""
                for i in range(n // 2)
            )
            config = tmp / "failover.yaml"
            config.write_text(
                f"state: state.db\ncanaries:\n  - {{type: tcp, host: {bench_probes.address(0)}, "
                f"port: {port}, timeout: 2s}}\nsites:\n{sites}\n"
            )
            env = {**os.environ, "SSL_CERT_FILE": str(ca.cert_path)}
            peak, cpu, wall = watch(
                [failover_bin(python), "--config", str(config), "agent"], duration, env
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"| agent, {n} endpoints over {scheme}, 10 s interval | measured | target |")
    print("|---|---|---|")
    target = "<= 80 MB" if scheme == "https" and n <= 1000 else ""
    print(f"| peak resident memory over {wall:.0f} s | {peak:.1f} MB | {target} |")
    print(f"| CPU | {cpu:.1f}% of a core | |")


def main() -> None:
    from _common import failover_bin, installed_failover, load_line

    parser = argparse.ArgumentParser()
    parser.add_argument("seconds", type=float, nargs="?", default=120.0)
    parser.add_argument("--https", type=int, help="this many endpoints over https")
    parser.add_argument("--http", type=int, help="this many endpoints over plain http")
    args = parser.parse_args()
    duration = args.seconds
    python = installed_failover()
    print(load_line())
    if args.https or args.http:
        scheme = "https" if args.https else "http"
        many(args.https or args.http, duration, python, scheme)
        return
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
        peak, cpu, wall = watch([failover_bin(python), "--config", str(config), "agent"], duration)
        for server in servers:
            server.shutdown()
    print("| agent, 10 sites x 2 endpoints x 2 checks, 10 s interval | measured | target |")
    print("|---|---|---|")
    print(f"| peak resident memory over {wall:.0f} s | {peak:.1f} MB | <= 35 MB |")
    print(f"| CPU | {cpu:.2f}% of a core | < 1% |")


if __name__ == "__main__":
    main()
