"""`failover --help` (target <= 60 ms), `failover status` (<= 150 ms) and `failover check`
on 20 endpoints (<= 200 ms), wall time of the process, run by run in turn.

status runs against a state file holding six hours of history for 10 sites at a 10 s
interval (about 86,000 probe rows), so that it measures real queries, not an empty database.
check probes 10 sites x 2 endpoints (http and tcp, all answering, on loopback) and a canary.
`python -c pass` is the interpreter's own start-up, for reference.

    python tests/bench/bench_startup.py [--runs 20]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import REPO

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


def check_config(tmp: Path) -> tuple[Path, list[ThreadingHTTPServer]]:
    """10 sites x 2 answering endpoints (an HTTP server each) probed by http and tcp."""
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text("ok")
    servers = []
    for i in range(20):
        server = ThreadingHTTPServer(
            (f"127.0.{3 + i // 10}.{1 + i % 10}", 0), partial(_Quiet, directory=str(tmp / "www"))
        )
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
      - {{type: tcp, port: {servers[2 * i].server_address[1]}, timeout: 2s}}
    policy: {{interval: 10s, down_after: 30s, up_after: 30s}}"""
        for i in range(10)
    )
    # each endpoint's checks go to its own address; both endpoints of a site listen on
    # the primary's port number (every server binds its own address)
    for i in range(10):
        servers[2 * i + 1].server_close()
        standby = ThreadingHTTPServer(
            (servers[2 * i + 1].server_address[0], servers[2 * i].server_address[1]),
            partial(_Quiet, directory=str(tmp / "www")),
        )
        threading.Thread(target=standby.serve_forever, daemon=True).start()
        servers[2 * i + 1] = standby
    config = tmp / "check.yaml"
    config.write_text(
        "state: check-state.db\ncanaries:\n"
        f"  - {{type: tcp, host: 127.0.0.1, port: {servers[0].server_address[1]}, timeout: 2s}}\n"
        f"  - {{type: tcp, host: {servers[0].server_address[0]}, "
        f"port: {servers[0].server_address[1]}, timeout: 2s}}\n"
        f"sites:\n{sites}\n"
    )
    return config, servers


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run."""
    from _common import run_timed

    wall, cpu, code, out = run_timed(argv, cwd=REPO)
    if code != 0:
        raise SystemExit(f"{argv}: exit {code}: {out[-500:]!r}")
    return wall, cpu


def main() -> None:
    from _common import failover_bin, installed_failover, load_line, ms_summary

    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else RUNS
    python = installed_failover()
    exe = [failover_bin(python)]
    with tempfile.TemporaryDirectory() as d:
        print("building a state file with six hours of history for 10 sites ...", file=sys.stderr)
        config = make_state(Path(d))
        checked, servers = check_config(Path(d))
        commands = {
            "`python -c pass` (the interpreter alone)": ([python, "-c", "pass"], None),
            "floor of --help: `python -c 'import typer'`": (
                [python, "-c", "import typer"],
                None,
            ),
            "`failover --help`": ([*exe, "--help"], 60),
            "floor of status and check: the interpreter with typer, pydantic, PyYAML, sqlite3 "
            "and asyncio imported": (
                [python, "-c", "import typer, pydantic.main, yaml, sqlite3, asyncio, ssl"],
                None,
            ),
            "`failover status` (10 sites, 6 h of history)": (
                [*exe, "--config", str(config), "status"],
                150,
            ),
            "`failover status --json`": ([*exe, "--config", str(config), "status", "--json"], 150),
            "`failover check` (20 endpoints x 2 checks, 2 canaries)": (
                [*exe, "--config", str(checked), "check"],
                200,
            ),
        }
        timed(commands["`failover check` (20 endpoints x 2 checks, 2 canaries)"][0])  # state
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        before = load_line()
        for i in range(runs):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                wall, used = timed(commands[name][0])
                times[name].append(wall)
                cpu[name].append(used)
        after = load_line()
        for server in servers:
            server.shutdown()
    print(f"{runs} runs each, interleaved; before: {before}; after: {after}")
    print()
    print("| command | wall: median (min–max) | CPU: median (min–max) | target |")
    print("|---|---|---|---|")
    for name, (_, target) in commands.items():
        print(
            f"| {name} | {ms_summary(times[name])} | {ms_summary(cpu[name])} "
            f"| {f'<= {target} ms' if target else ''} |"
        )


if __name__ == "__main__":
    main()
