"""The whole story (issue #5), end to end on real servers: a primary and a standby, each a
network namespace with sshd, restic and a web server serving the site from its own /srv;
PowerDNS serving the zone; a restic repository on SeaweedFS's S3; the agent as a daemon
subprocess with a short interval and threshold. Real outages (nftables), then the
evidence: DNS at the authoritative server, the content the standby serves, the run's
journal, the notifications and the report.

Variants: the standby is down too (no switch, an alarm); the agent's own network is down
(no switch); the primary flaps (no switch); the agent is killed during the restore and
restarted (the run completes once); failback after writes on the standby; the old primary
returns (not made active, status warns, fencing ran).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_for
from tests.support.cli import failover, failover_json, popen_failover
from tests.support.lab import Lab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from running_lab()


class Story:
    """The agent and the CLI, pointed at a lab."""

    def __init__(self, lab: Lab, tmp: Path, **overrides: Any) -> None:
        self.lab = lab
        self.config = lab.write_config(
            tmp / "failover.yaml", state=str(tmp / "state.db"), **overrides
        )
        self.state = tmp / "state.db"
        self.log = tmp / "agent.log"
        self.agent: subprocess.Popen[str] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return failover(*args, config=self.config, env=self.lab.env(), check=check)

    def json(self, *args: str) -> Any:
        return failover_json(*args, config=self.config, env=self.lab.env())

    def start_agent(self) -> None:
        self.agent = popen_failover("agent", config=self.config, env=self.lab.env(), log=self.log)

    def stop_agent(self, sig: int = signal.SIGTERM) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(sig)
            self.agent.wait(timeout=30)
        self.agent = None

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.json("status")["sites"]["shop"]
        return data

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        try:
            wait_for(predicate, timeout, what, interval=0.2)
        except TimeoutError:
            log = self.log.read_text()[-4000:] if self.log.exists() else ""
            raise AssertionError(
                f"timed out waiting for {what}\nnotifications: "
                f"{self.lab.receiver.titles()}\nrequests: {self.lab.receiver.requests}"
                f"\nagent log:\n{log}"
            ) from None

    def health(self, endpoint: str) -> str:
        return str(self.status()["endpoints"][endpoint]["health"])

    def both_up(self) -> None:
        self.wait(
            lambda: self.health("primary") == "up" and self.health("standby") == "up",
            30,
            "both endpoints up",
        )

    def db(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True)
        try:
            return conn.execute(query, args).fetchall()
        except sqlite3.OperationalError:
            return []  # the table does not exist yet
        finally:
            conn.close()

    def runs(self) -> list[tuple[Any, ...]]:
        return self.db("SELECT id, kind, status, attempts, source, target FROM runs")


def test_failover_story_then_old_primary_returns_then_failback(lab: Lab, tmp_path: Path) -> None:
    story = Story(lab, tmp_path)
    new_order = f"3,{time.time():.0f}.00 placed just before the outage"
    lab.primary.ssh(f"echo '{new_order}' >> /srv/site/data/orders.csv")
    backup = story.cli("backup", "run")
    assert backup.returncode == 0, backup.stderr
    assert lab.dns_answer() == [lab.primary.ip]
    story.start_agent()
    try:
        story.both_up()
        cut = time.time()
        lab.primary.blackhole()

        # declared down after the threshold, restored, switched, verified
        story.wait(lambda: lab.dns_answer() == [lab.standby.ip], 90, "DNS to serve the standby")
        story.wait(lambda: story.status()["active"] == "standby", 30, "standby active")
        runs = story.runs()
        assert len(runs) == 1 and runs[0][1:3] == ("failover", "done")
        down_at = story.db("SELECT declared_down FROM incidents WHERE endpoint='primary'")[0][0]
        assert down_at - cut >= 3.0 - 1.0  # down_after 3s (one interval of slack)

        # the standby serves the newest backed-up content, not its outdated copy
        status, body = lab.https_get(lab.standby, "/data/orders.csv")
        assert status == 200 and new_order in body
        status, index = lab.https_get(lab.standby, "/")
        assert lab.marker in index and lab.outdated_marker not in index

        story.wait(
            lambda: any("failover to standby complete" in t for t in lab.receiver.titles()),
            20,
            "the completion notice",
        )
        titles = lab.receiver.titles()
        assert any("primary is DOWN" in t for t in titles)
        assert any("failover to standby started" in t for t in titles)

        text = story.cli("status").stdout
        assert "backup: fresh" in text, text
        assert "dns: pdns zone example.test: shop.example.test A -> standby" in text, text
        assert "last run #1: failover primary -> standby" in text, text

        # the journal: every step with its outcome
        run = story.json("runs", "show", "1")
        steps = {s["name"]: s["status"] for s in run["steps"]}
        assert steps == {
            "preflight": "done",
            "final_backup": "skipped",
            "restore": "done",
            "after_restore": "done",
            "recheck": "done",
            "switch_dns": "done",
            "activate": "done",
            "verify_dns": "done",
            "notify": "done",
        }

        # the old primary returns: never made active on its own; fenced; status warns
        lab.primary.heal()
        story.wait(
            lambda: any("old primary primary is back" in t for t in lab.receiver.titles()),
            60,
            "the old primary noticed",
        )
        story.wait(lambda: not lab.primary.web_running, 20, "the fence to stop its web server")
        time.sleep(4)  # the fenced primary fails its checks again: no new alarm about it
        site = story.status()
        assert site["active"] == "standby" and lab.dns_answer() == [lab.standby.ip]
        assert len(story.runs()) == 1
        assert sum("primary is DOWN" in t for t in lab.receiver.titles()) == 1
        assert any("serves the data from before the failover" in w for w in site["warnings"]), site
    finally:
        story.stop_agent()

    report = story.cli("report").stdout
    for fragment in (
        "first failed probe",
        "primary declared down",
        "run #1 failover to standby",
        "step restore done",
        "every authoritative nameserver serves the standby",
        "user-facing downtime",
    ):
        assert fragment in report, report
    report_json = json.loads(story.cli("report", "--format", "json").stdout)
    incident = report_json["sites"]["shop"]["incidents"][0]
    assert incident["user_facing_downtime"] < 60

    # failback after writes on the standby: the written data ends up on the primary
    written = f"4,{time.time():.0f}.00 written on the standby during the outage"
    lab.standby.ssh(f"echo '{written}' >> /srv/site/data/orders.csv")
    lab.primary.start_web(lab.cert)  # the owner repaired the old primary's web server
    plan = story.cli("switch", "shop", "--to", "primary")
    assert "back up standby" in plan.stdout and "nothing changed" in plan.stdout
    assert lab.dns_answer() == [lab.standby.ip]
    done = story.cli("switch", "shop", "--to", "primary", "--yes", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab.dns_answer() == [lab.primary.ip]
    status, body = lab.https_get(lab.primary, "/data/orders.csv")
    assert status == 200 and written in body and new_order in body
    assert [r[1:3] for r in story.runs()] == [("failover", "done"), ("failback", "done")]


def test_no_switch_when_the_standby_is_down_too_and_an_alarm(lab: Lab, tmp_path: Path) -> None:
    story = Story(lab, tmp_path, backup=None, failover={"after_restore": []})
    story.start_agent()
    try:
        story.both_up()
        lab.standby.blackhole()
        lab.primary.blackhole()
        story.wait(
            lambda: any("NO STANDBY IS READY" in t for t in lab.receiver.titles()),
            60,
            "the no-healthy-standby alarm",
        )
        time.sleep(2)
        assert story.runs() == []
        assert story.status()["active"] == "primary"
        assert lab.dns_answer() == [lab.primary.ip]
        alarms = sum("NO STANDBY IS READY" in t for t in lab.receiver.titles())
        assert alarms == 1  # once per outage, not once per round
        # the standby comes back: now it fails over
        lab.standby.heal()
        story.wait(lambda: lab.dns_answer() == [lab.standby.ip], 60, "the late failover")
    finally:
        story.stop_agent()


def test_no_switch_when_the_agents_own_network_is_down(lab: Lab, tmp_path: Path) -> None:
    story = Story(lab, tmp_path, backup=None, failover={"after_restore": []})
    story.start_agent()
    try:
        story.both_up()
        lab.cut_canary()
        lab.primary.blackhole()
        story.wait(
            lambda: any("agent is offline" in t for t in lab.receiver.titles()),
            30,
            "the agent-offline notice",
        )
        time.sleep(6)  # twice down_after
        assert story.runs() == []
        assert lab.dns_answer() == [lab.primary.ip]
        assert not any("primary is DOWN" in t for t in lab.receiver.titles())
    finally:
        story.stop_agent()


def test_a_flapping_primary_is_never_switched(lab: Lab, tmp_path: Path) -> None:
    story = Story(
        lab, tmp_path, backup=None, failover={"after_restore": []}, policy={"down_after": "4s"}
    )
    story.start_agent()
    try:
        story.both_up()
        deadline = time.monotonic() + 16
        while time.monotonic() < deadline:  # 2 s off, 2 s on: never down for 4 s in a row
            lab.primary.blackhole()
            time.sleep(2)
            lab.primary.heal()
            time.sleep(2)
        assert story.runs() == []
        assert lab.dns_answer() == [lab.primary.ip]
        transitions = story.db("SELECT to_state FROM transitions WHERE endpoint='primary'")
        assert ("down",) not in transitions
    finally:
        story.stop_agent()


def test_agent_killed_during_restore_completes_the_run_once(lab: Lab, tmp_path: Path) -> None:
    # A slower restore target so that the kill lands inside the restore step for sure.
    story = Story(lab, tmp_path)
    lab.primary.ssh("head -c 30000000 /dev/urandom > /srv/site/data/big.bin")
    assert story.cli("backup", "run").returncode == 0
    story.start_agent()
    try:
        story.both_up()
        lab.primary.blackhole()
        story.wait(
            lambda: (
                story.db("SELECT 1 FROM run_steps WHERE name='restore' AND status='running'") != []
            ),
            60,
            "the restore step to start",
        )
        story.stop_agent(signal.SIGKILL)  # a crash, mid-restore
        steps = dict(story.db("SELECT name, status FROM run_steps"))
        assert steps["restore"] == "running" and steps["switch_dns"] == "pending"
        assert lab.dns_answer() == [lab.primary.ip]

        story.start_agent()
        story.wait(lambda: lab.dns_answer() == [lab.standby.ip], 90, "the resumed failover")
        story.wait(lambda: story.runs() and story.runs()[0][2] == "done", 30, "the run done")
    finally:
        story.stop_agent()
    runs = story.runs()
    assert len(runs) == 1 and runs[0][1:4] == ("failover", "done", 2)
    steps = dict(story.db("SELECT name, attempts FROM run_steps"))
    assert steps["preflight"] == 1 and steps["restore"] == 2 and steps["switch_dns"] == 1
    _, body = lab.https_get(lab.standby, "/")
    assert lab.marker in body
    assert sum("failover to standby complete" in t for t in lab.receiver.titles()) <= 1


def test_warm_standby_is_refreshed_and_fails_over_without_a_restore(
    lab: Lab, tmp_path: Path
) -> None:
    story = Story(lab, tmp_path, failover={"standby": "warm", "warm_refresh": "1h"})
    assert story.cli("backup", "run").returncode == 0
    _, before = lab.https_get(lab.standby, "/")
    assert lab.outdated_marker in before
    story.start_agent()
    try:
        # the agent restores the newest snapshot onto the warm standby on its own
        story.wait(
            lambda: lab.marker in lab.https_get(lab.standby, "/")[1],
            60,
            "the warm standby to be refreshed",
        )
        story.both_up()
        lab.primary.blackhole()
        story.wait(lambda: lab.dns_answer() == [lab.standby.ip], 60, "the warm failover")
        story.wait(lambda: story.runs() and story.runs()[0][2] == "done", 30, "the run done")
    finally:
        story.stop_agent()
    steps = dict(story.db("SELECT name, status FROM run_steps"))
    assert steps["restore"] == "skipped" and steps["switch_dns"] == "done"
