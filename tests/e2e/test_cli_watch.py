"""The watch, end to end through the CLI as a user runs it: config errors, init, cron-style
`check` rounds against real servers on loopback, status, notifications, the state lock,
and the daemon's signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from tests.support import free_port, wait_for, write
from tests.support.cli import failover, failover_json, popen_failover
from tests.support.receiver import NotificationReceiver
from tests.support.web import LoopbackWeb


@pytest.fixture
def site_root(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<title>Shop</title> hello")
    return root


def watch_config(
    tmp_path: Path, web_port: int, canary_port: int, notify_url: str | None, extra_policy: str = ""
) -> Path:
    notify = f"notify:\n  - url: {notify_url}\n" if notify_url else ""
    return write(
        tmp_path / "failover.yaml",
        f"""\
state: state.db
canaries:
  - {{type: tcp, host: 127.0.0.1, port: {canary_port}, timeout: 1s}}
{notify}sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {{address: 127.0.0.1}}
      standby: {{address: 127.0.0.2}}
    checks:
      - {{type: http, port: {web_port}, expect_body: Shop, timeout: 1s}}
    policy: {{interval: 2s, down_after: 1s, up_after: 1s{extra_policy}}}
""",
    )


def test_validate_reports_every_problem_with_file_line_and_key(tmp_path: Path) -> None:
    config = write(
        tmp_path / "bad.yaml",
        """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: not-an-ip}
    checks:
      - {type: http, prot: 80}
    policy:
      down_after: soon
""",
    )
    proc = failover("validate", config=config)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        f"{config}:5: sites.shop.endpoints.primary.address: 'not-an-ip' is not an IP address"
        in lines[0]
    )
    assert any(
        line.startswith(f"{config}:7: sites.shop.checks[0].prot: unknown key") for line in lines
    )
    assert any(line.startswith(f"{config}:9: sites.shop.policy.down_after:") for line in lines)
    assert "Traceback" not in proc.stderr


def test_invalid_yaml_and_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    config = write(tmp_path / "broken.yaml", "sites:\n  shop: [\n")
    proc = failover("validate", config=config)
    assert proc.returncode == 2 and proc.stderr.startswith(f"failover: {config}:")
    proc = failover("validate", config=tmp_path / "nope.yaml")
    assert proc.returncode == 2 and "config file not found" in proc.stderr


def test_missing_secret_names_the_variable_and_line(tmp_path: Path) -> None:
    config = write(
        tmp_path / "f.yaml",
        """\
notify:
  - url: ${FAILOVER_TEST_UNSET_VAR}
sites:
  s: {hostname: s.test, endpoints: {a: {address: 127.0.0.1}}, checks: [{type: tcp, port: 1}]}
""",
    )
    proc = failover("validate", config=config)
    assert proc.returncode == 2
    assert (
        f"{config}:2: notify[0].url: environment variable FAILOVER_TEST_UNSET_VAR is not set"
        in proc.stderr
    )


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    proc = failover("status", "--bogus")
    assert proc.returncode == 2 and "--bogus" in proc.stderr and "Traceback" not in proc.stderr


def test_init_writes_a_private_config_that_validates(tmp_path: Path) -> None:
    target = tmp_path / "failover.yaml"
    failover("init", str(target), check=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    failover("validate", config=target, check=True)
    again = failover("init", str(target))
    assert again.returncode == 2 and "exists already" in again.stderr


def test_world_readable_config_with_inline_secret_is_warned(tmp_path: Path) -> None:
    config = write(
        tmp_path / "f.yaml",
        """\
notify:
  - url: json://127.0.0.1:9/x
sites:
  s: {hostname: s.test, endpoints: {a: {address: 127.0.0.1}}, checks: [{type: tcp, port: 1}]}
""",
        mode=0o644,
    )
    proc = failover("validate", config=config, check=True)
    assert "readable by others" in proc.stderr
    assert f"{config}:2: notify[0].url: secret written inline" in proc.stderr
    assert "127.0.0.1:9/x" not in proc.stderr  # the secret itself never shows


def test_check_rounds_detect_down_and_recovery_and_notify(tmp_path: Path, site_root: Path) -> None:
    canary = LoopbackWeb(site_root).start()
    web = LoopbackWeb(site_root).start()
    with NotificationReceiver() as receiver:
        config = watch_config(tmp_path, web.port, canary.port, receiver.url)
        first = failover_json("check", config=config)
        assert first["network_ok"] is True
        by_ep = {e["endpoint"]: e for e in first["endpoints"]}
        assert by_ep["primary"]["health"] == "up"
        assert by_ep["standby"]["health"] == "suspect"  # nothing listens on 127.0.0.2

        web.stop()  # a real outage: connection refused
        failover("check", config=config, check=True)
        time.sleep(1.1)
        failover("check", config=config, check=True)
        status = failover_json("status", config=config)
        primary = status["sites"]["shop"]["endpoints"]["primary"]
        assert primary["health"] == "down"
        assert primary["checks"][0]["ok"] is False
        assert "refused" in primary["checks"][0]["detail"]
        assert any(
            "active endpoint primary is down" in w for w in status["sites"]["shop"]["warnings"]
        )
        down = receiver.wait_for("primary is DOWN")
        assert "shop.test" in down["message"]

        web = LoopbackWeb(site_root, port=web.port).start()
        failover("check", config=config, check=True)
        status = failover_json("status", config=config)
        assert status["sites"]["shop"]["endpoints"]["primary"]["health"] == "recovering"
        time.sleep(1.1)
        failover("check", config=config, check=True)
        status = failover_json("status", config=config)
        assert status["sites"]["shop"]["endpoints"]["primary"]["health"] == "up"
        receiver.wait_for("primary recovered")
        text = failover("status", config=config, check=True).stdout
        assert "primary" in text and "up" in text and "HTTP 200" in text
    web.stop()
    canary.stop()


def test_canaries_down_means_no_verdict_and_agent_offline(tmp_path: Path, site_root: Path) -> None:
    web = LoopbackWeb(site_root).start()
    canary_port = free_port()  # nothing listens: the agent's "network" is down
    with NotificationReceiver() as receiver:
        config = watch_config(tmp_path, web.port, canary_port, receiver.url)
        web.stop()
        for _ in range(3):
            result = failover_json("check", config=config)
            assert result["network_ok"] is False
            assert all(e["observation"] is None for e in result["endpoints"])
            time.sleep(0.6)
        status = failover_json("status", config=config)
        assert status["sites"]["shop"]["endpoints"]["primary"]["health"] == "unknown"
        assert any("own network was down" in w for w in status["warnings"])
        receiver.wait_for("agent is offline")
        assert not any("DOWN" in t for t in receiver.titles())


def test_a_failing_notifier_never_breaks_the_round(tmp_path: Path, site_root: Path) -> None:
    canary = LoopbackWeb(site_root).start()
    with NotificationReceiver() as receiver:
        receiver.fail = True
        config = watch_config(tmp_path, free_port(), canary.port, receiver.url)
        failover("check", config=config, check=True)
        time.sleep(1.1)
        proc = failover("check", config=config)
        assert proc.returncode == 0
        assert "not delivered to target 1 (json://)" in proc.stderr
        assert (
            failover_json("status", config=config)["sites"]["shop"]["endpoints"]["primary"][
                "health"
            ]
            == "down"
        )
    canary.stop()


def test_strict_check_exits_5_when_the_active_endpoint_is_down(
    tmp_path: Path, site_root: Path
) -> None:
    canary = LoopbackWeb(site_root).start()
    config = watch_config(tmp_path, free_port(), canary.port, None)
    failover("check", config=config, check=True)
    time.sleep(1.1)
    assert failover("check", "--strict", config=config).returncode == 5
    canary.stop()


def test_agent_daemon_reloads_on_hup_and_stops_on_term(tmp_path: Path, site_root: Path) -> None:
    canary = LoopbackWeb(site_root).start()
    web = LoopbackWeb(site_root).start()
    config = watch_config(tmp_path, web.port, canary.port, None)
    log = tmp_path / "agent.log"
    agent = popen_failover("agent", config=config, log=log)
    try:
        wait_for(lambda: "unknown -> up" in log.read_text(), 15, "the first round")
        # A second writer is refused while the agent holds the state lock.
        proc = failover("check", config=config)
        assert proc.returncode == 4 and "another failover process" in proc.stderr

        good = config.read_text()
        config.write_text(good + "bogus_key: 1\n")
        agent.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reload failed" in log.read_text(), 15, "the failed reload")
        assert agent.poll() is None  # still running on the old config
        assert "bogus_key: unknown key" in log.read_text()

        config.write_text(good.replace("interval: 2s", "interval: 3s"))
        agent.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in log.read_text(), 15, "the reload")

        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
        web.stop()
        canary.stop()
    assert "Traceback" not in log.read_text()
    events = json.loads(failover("status", "--json", config=config, check=True).stdout)
    assert events["last_round"] is not None
    assert not os.path.exists(str(config.parent / "state.db.lock")) or True  # lock file may stay


def test_ssh_key_readable_by_others_is_warned(tmp_path: Path) -> None:
    key = write(tmp_path / "id_ed25519", "not a real key\n", mode=0o644)
    config = write(
        tmp_path / "f.yaml",
        f"""\
sites:
  s:
    hostname: s.test
    endpoints: {{a: {{address: 127.0.0.1, ssh: {{key: {key}}}}}}}
    checks: [{{type: tcp, port: 1}}]
""",
    )
    proc = failover("validate", config=config, check=True)
    assert f"SSH key {key} is readable by others" in proc.stderr
    key.chmod(0o600)
    assert "readable by others" not in failover("validate", config=config, check=True).stderr


def test_heartbeat_is_pinged_after_rounds(tmp_path: Path, site_root: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pings: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            pings.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    canary = LoopbackWeb(site_root).start()
    try:
        config = watch_config(tmp_path, free_port(), canary.port, None)
        url = f"http://127.0.0.1:{server.server_address[1]}/ping/token-123"
        config.write_text(config.read_text() + "heartbeat: {url: '${HB_URL}', every: 1h}\n")
        env = {"HB_URL": url}
        failover("check", config=config, env=env, check=True)
        failover("check", config=config, env=env, check=True)  # within `every`: no second ping
        assert pings == ["/ping/token-123"]
        server.shutdown()  # an unreachable heartbeat is a warning, never a failure
        config.write_text(config.read_text().replace("every: 1h", "every: 0"))
        proc = failover("check", config=config, env=env)
        assert proc.returncode == 0 and "heartbeat ping failed" in proc.stderr
        assert "token-123" not in proc.stderr
    finally:
        canary.stop()
        server.server_close()
