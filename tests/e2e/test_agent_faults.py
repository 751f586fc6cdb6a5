"""The agent and the CLI under faults a user or the machine causes (issue #10): a disk that
fills up under the running agent (a real tmpfs), Ctrl-C, numbers and durations out of range
on the command line."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.support import wait_for, write
from tests.support.cli import failover, popen_failover
from tests.support.disks import fill, small_disk

SITE = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 127.0.0.1}
    checks:
      - {type: tcp, port: 9, timeout: 500ms}
    policy: {interval: 1s, down_after: 1s, up_after: 1s}
"""


def last_round_ts(config: Path) -> float:
    proc = failover("status", "--json", config=config, timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout)["last_round"]
    return float(last["ts"]) if last else 0.0


def test_agent_survives_a_full_disk_and_records_again_once_there_is_room(tmp_path: Path) -> None:
    with small_disk("1m") as disk:
        config = write(tmp_path / "failover.yaml", f"state: {disk / 'state.db'}\n" + SITE)
        log = tmp_path / "agent.log"
        agent = popen_failover("agent", config=config, log=log)
        try:
            wait_for(lambda: last_round_ts(config) > 0, 30, "a first recorded round")
            filler = fill(disk)
            wait_for(
                lambda: "round failed: the disk holding the state" in log.read_text(),
                30,
                "a round that could not be recorded",
            )
            assert agent.poll() is None, log.read_text()  # still watching
            filler.unlink()
            freed = time.time()
            wait_for(lambda: last_round_ts(config) > freed, 30, "a round recorded again")
            assert agent.poll() is None
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=30) == 0  # SIGTERM: a clean stop
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(timeout=10)
    text = log.read_text()
    assert "Traceback" not in text and "internal error" not in text, text
    full = [line for line in text.splitlines() if "is full" in line]
    assert full and all("this was not recorded" in line for line in full)


def test_sigint_stops_the_agent_with_130(tmp_path: Path) -> None:
    config = write(tmp_path / "failover.yaml", "state: state.db\n" + SITE)
    log = tmp_path / "agent.log"
    agent = popen_failover("agent", config=config, log=log)
    try:
        wait_for(lambda: last_round_ts(config) > 0, 30, "a first recorded round")
        agent.send_signal(signal.SIGINT)
        assert agent.wait(timeout=30) == 130
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
    assert "received SIGINT" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_out_of_range_numbers_and_durations_are_usage_errors(tmp_path: Path) -> None:
    config = write(tmp_path / "failover.yaml", "state: state.db\n" + SITE)
    assert failover("check", config=config, timeout=60).returncode == 0
    for args in (
        ("runs", "show", "99999999999999999999999"),
        ("runs", "show", "-1"),
        ("runs", "abandon", "99999999999999999999999"),
        ("dns", "set", "shop", "--to", "primary", "--deadline", ".nan"),
        ("dns", "set", "shop", "--to", "primary", "--deadline", "inf"),
        ("dns", "set", "shop", "--to", "primary", "--deadline", "-5s"),
        ("dns", "set", "shop", "--to", "primary", "--deadline", "9999d"),
        ("backup", "run", "--wait", "inf"),
        ("dns", "show", "--timeout", "nan"),
    ):
        proc = failover(*args, config=config, timeout=60)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    proc = failover("dns", "set", "shop", "--to", "primary", "--deadline", ".nan", config=config)
    assert proc.stderr.strip() == (
        "failover: --deadline: expected a duration such as 30s, 5m, 1h30m, got '.nan'"
    )
    # the same parser as the config: compound durations are accepted (the site has no dns)
    proc = failover("dns", "set", "shop", "--to", "primary", "--deadline", "1m30s", config=config)
    assert "--deadline" not in proc.stderr
