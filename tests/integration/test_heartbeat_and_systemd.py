"""Heartbeats against a real HTTP listener on loopback: healthchecks-style and Uptime Kuma
signals from `check` rounds; a listener that never answers costs a round no more than the
probe interval and never holds the state lock; a URL with a bad port or no scheme is a
config error that never shows the URL. The agent under a stand-in for systemd (a datagram
socket as $NOTIFY_SOCKET): READY after the first round, watchdog pings while rounds
complete, none once the round loop hangs, STOPPING at the end. The shipped units pass
`systemd-analyze verify` and score at most 3 in `systemd-analyze security`."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_binary, wait_for, write
from tests.support.cli import failover, popen_failover

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "examples" / "systemd"


class Listener:
    """Records each request (method, path, body); `hang` makes it never answer."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.hang = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, body))
                if outer.hang.is_set():
                    outer.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Listener:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running


def config_with(
    tmp_path: Path, heartbeat: str, canary_port: int | None = None, interval: str = "2s"
) -> Path:
    canaries = (
        f"canaries: [{{type: tcp, host: 127.0.0.1, port: {canary_port}, timeout: 0.5s}}]\n"
        if canary_port
        else ""
    )
    return write(
        tmp_path / "failover.yaml",
        f"""\
state: state.db
{canaries}heartbeat: {heartbeat}
sites:
  shop:
    hostname: shop.test
    endpoints: {{primary: {{address: 127.0.0.1}}}}
    checks: [{{type: tcp, port: 1, timeout: 0.5s}}]
    policy: {{interval: {interval}}}
""",
    )


def test_healthchecks_style_pings_from_rounds(tmp_path: Path, listener: Listener) -> None:
    config = config_with(tmp_path, "{url: '${HB}', kind: healthchecks, every: 0}")
    env = {"HB": f"{listener.url}/ping/uuid-123"}
    failover("check", config=config, env=env, check=True)
    wait_for(lambda: len(listener.requests) == 1, 10, "the success ping")
    method, path, body = listener.requests[0]
    assert (method, path) == ("POST", "/ping/uuid-123")
    assert b"1 endpoint(s) probed" in body
    # the agent's own network down (a canary that does not answer): /fail with why
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: refused
    config = config_with(
        tmp_path, "{url: '${HB}', kind: healthchecks, every: 0}", dead.getsockname()[1]
    )
    failover("check", config=config, env=env, check=True)
    dead.close()
    wait_for(lambda: len(listener.requests) == 2, 10, "the fail ping")
    method, path, body = listener.requests[1]
    assert path == "/ping/uuid-123/fail" and b"network is down" in body


def test_uptime_kuma_push(tmp_path: Path, listener: Listener) -> None:
    config = config_with(tmp_path, "{url: '${HB}', kind: uptime-kuma, every: 0}")
    failover(
        "check",
        config=config,
        env={"HB": f"{listener.url}/api/push/TOK?status=up&msg=OK&ping="},
        check=True,
    )
    wait_for(lambda: listener.requests, 10, "the push")
    method, path, _ = listener.requests[0]
    assert method == "GET" and path.startswith("/api/push/TOK?")
    assert "status=up" in path and "msg=1+endpoint" in path and re.search(r"ping=\d+", path)


def test_a_listener_that_never_answers_costs_at_most_the_interval_and_never_the_lock(
    tmp_path: Path, listener: Listener
) -> None:
    listener.hang.set()
    config = config_with(tmp_path, "{url: '${HB}', timeout: 1h, every: 0}", interval="2s")
    env = {"HB": f"{listener.url}/p/secret-token"}
    from failover.store import lock_holder

    started = time.monotonic()
    slow = popen_failover("check", config=config, env=env, log=tmp_path / "slow.log")
    # while the check waits for its ping, the state lock is already free: another round
    # can run (exit 0, not 4)
    wait_for(lambda: listener.requests, 20, "the first ping")
    wait_for(lambda: lock_holder(tmp_path / "state.db") is None, 10, "the lock released")
    assert slow.poll() is None  # still waiting for the ping
    second = failover("check", config=config, env=env)
    assert second.returncode == 0, second.stderr
    assert slow.wait(30) == 0
    assert time.monotonic() - started < 20  # bounded by the 2 s interval, not the 1 h timeout
    log = (tmp_path / "slow.log").read_text()
    assert "heartbeat ping failed: TimeoutError (signal: success)" in log, log
    assert "secret-token" not in log and "secret-token" not in second.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("hc-ping.test/secret-token", "expected an http:// or https:// URL"),
        ("https://hc-ping.test:99999/secret-token", "not a valid URL"),
        ("https://hc-ping.test:port/secret-token", "not a valid URL"),
    ],
)
def test_a_bad_heartbeat_url_is_a_config_error_that_never_shows_it(
    tmp_path: Path, url: str, message: str
) -> None:
    config = config_with(tmp_path, "{url: '${HB}'}")
    proc = failover("check", config=config, env={"HB": url})
    assert proc.returncode == 2
    assert f"heartbeat.url: {message}" in proc.stderr
    assert "secret-token" not in proc.stderr + proc.stdout


# --- systemd -------------------------------------------------------------------------------


class NotifySocket:
    """A stand-in for systemd's notification socket: collects the datagrams."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            self.messages.append((time.monotonic(), data.decode()))
        return [m for _, m in self.messages]

    def wait_for(self, fragment: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(fragment in m for m in self.drain()):
                return
        raise AssertionError(f"no {fragment!r} from the agent: {self.drain()}")

    def close(self) -> None:
        self.sock.close()


def test_the_agent_tells_systemd_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path)
    config = config_with(tmp_path, "{url: 'http://127.0.0.1:9/x', every: 1h}", interval="1s")
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    proc = popen_failover("agent", config=config, env=env, log=tmp_path / "agent.log")
    try:
        notify.wait_for("READY=1")
        notify.wait_for("WATCHDOG=1")
        time.sleep(2.5)
        notify.drain()
        pings = [t for t, m in notify.messages if "WATCHDOG=1" in m]
        assert len(pings) >= 3  # every half period (0.5 s) while rounds complete
        assert any("STATUS=" in m for _, m in notify.messages)
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        notify.wait_for("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()


def test_no_watchdog_pings_once_the_round_loop_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from failover.config.load import load_config
    from failover.notify import Notifier
    from failover.store import Store
    from failover.watch.daemon import Agent

    notify = NotifySocket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    config = config_with(tmp_path, "{url: 'http://127.0.0.1:9/x', every: 1h}", interval="1s")
    loaded = load_config(config)
    stuck = threading.Event()
    release = threading.Event()

    def hanging_hook(ctx: Any) -> None:
        if ctx.result is not None and ctx.result.outcomes and stuck.is_set():
            release.wait(60)  # a round that never completes (a stage stuck for good)

    with Store.open(loaded.state_path, lock=True) as store:
        agent = Agent(loaded, store, Notifier([]), lambda: loaded, [hanging_hook])
        agent.stale_after = lambda: 2.0  # type: ignore[method-assign]
        runner = threading.Thread(target=agent.run, daemon=True)
        runner.start()
        try:
            notify.wait_for("WATCHDOG=1")
            stuck.set()
            time.sleep(2.0 + 2 * 1.0 + 1.0)  # stale_after, a round or two, a margin
            notify.drain()
            quiet_since = time.monotonic()
            time.sleep(1.5)  # three ping periods
            notify.drain()
            late = [t for t, m in notify.messages if "WATCHDOG=1" in m and t > quiet_since]
            assert not late, "the watchdog is still pinged while no round completes"
            assert agent.rounds >= 1
        finally:
            agent._stop.set()
            release.set()
            runner.join(30)
            notify.close()


def _units_for_this_machine(tmp_path: Path) -> list[Path]:
    """The shipped units with ExecStart pointing at this checkout's `failover` (the README
    installs it as /usr/local/bin/failover, which `verify` would look for)."""
    import sys

    exe = Path(sys.executable).with_name("failover")
    if not exe.exists():
        exe = write(
            tmp_path / "failover", f'#!/bin/sh\nexec {sys.executable} -m failover "$@"\n', 0o755
        )
    out = []
    for unit in sorted(UNITS.glob("failover-*")):
        text = unit.read_text()
        if unit.suffix == ".service":
            assert "ExecStart=/usr/local/bin/failover " in text, unit  # the README's install
        target = tmp_path / unit.name
        target.write_text(text.replace("/usr/local/bin/failover", str(exe)))
        out.append(target)
    return out


def test_the_units_pass_systemd_analyze_verify_and_score_at_most_3(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    units = _units_for_this_machine(tmp_path)
    assert {u.name for u in units} == {
        "failover-agent.service",
        "failover-check.service",
        "failover-check.timer",
    }
    proc = subprocess.run(
        [analyze, "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stdout + proc.stderr
    for unit in units:
        if unit.suffix != ".service":
            continue
        proc = subprocess.run(
            [analyze, "security", "--offline=true", str(unit)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
        assert found, proc.stdout + proc.stderr
        assert float(found.group(1)) <= 3.0, (unit.name, found.group(1))
    agent = (UNITS / "failover-agent.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "ProtectSystem=strict",
        "SystemCallFilter=@system-service",
    ):
        assert line in agent
    assert "OnUnitActiveSec=" in (UNITS / "failover-check.timer").read_text()


def test_a_backup_signals_start_then_its_exit_status(tmp_path: Path, listener: Listener) -> None:
    require_binary("restic")
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.txt").write_text("orders\n")
    write(tmp_path / "pw", "correct horse\n")
    config = write(
        tmp_path / "failover.yaml",
        f"""\
state: state.db
sites:
  shop:
    hostname: shop.test
    endpoints: {{primary: {{address: 127.0.0.1}}}}
    checks: [{{type: tcp, port: 1, timeout: 0.5s}}]
    backup:
      repository: {tmp_path / "repo"}
      password: file:{tmp_path / "pw"}
      source: local
      paths: [{src}]
      cache_dir: {tmp_path / "cache"}
      heartbeat: {{url: "${{HB}}", kind: healthchecks}}
""",
    )
    env = {"HB": f"{listener.url}/ping/backup-uuid"}
    ok = failover("backup", "run", config=config, env=env)
    assert ok.returncode == 0, ok.stderr
    assert [(m, p) for m, p, _ in listener.requests] == [
        ("POST", "/ping/backup-uuid/start"),
        ("POST", "/ping/backup-uuid/0"),
    ]
    assert b"backup of shop ok" in listener.requests[1][2]
    # the wrong password for the repository now made: the run fails, exit status 1
    write(tmp_path / "pw", "wrong\n")
    bad = failover("backup", "run", config=config, env=env)
    assert bad.returncode == 1
    assert [p for _, p, _ in listener.requests[2:]] == [
        "/ping/backup-uuid/start",
        "/ping/backup-uuid/1",
    ]
    assert b"FAILED" in listener.requests[3][2]
