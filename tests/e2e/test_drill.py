"""Drills (issue #14), end to end on the lab: a primary and a standby (namespaces with sshd
and a web server), PowerDNS serving the zone, restic on SeaweedFS's S3, the CLI and the
agent as subprocesses. A drill rehearses a failover onto the standby and measures RTO and
RPO; DNS (asked at the authoritative server with dnspython, serial included) and the active
endpoint never change. Failures notify with the step's output; the primary going down
abandons a drill at once for the real failover; the schedule runs one drill per period under
the daemon and under cron.

One lab for the module: each test has its own state file and config. The test that fails
over is last (it moves DNS).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_failover_story import Story
from tests.support.cli import popen_failover
from tests.support.dns_servers import query
from tests.support.lab import ZONE, Lab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab()


@pytest.fixture(autouse=True)
def fresh_notifications(lab: Lab) -> None:
    lab.receiver.messages.clear()


def dns_view(lab: Lab) -> tuple[list[str], str]:
    """What the authoritative server serves: the site's A record and the zone's serial."""
    assert lab.pdns is not None
    soa = query(lab.pdns.dns_port, ZONE, "SOA")[0]
    return lab.dns_answer(), soa[0].split()[2] if soa else ""


def drill_runs(story: Story) -> list[tuple[Any, ...]]:
    return story.db(
        "SELECT id, status, trigger, created, finished, detail FROM runs WHERE kind='drill' "
        "ORDER BY id"
    )


def steps_of(story: Story, run_id: int) -> dict[str, tuple[str, str | None]]:
    rows = story.db("SELECT name, status, detail FROM run_steps WHERE run_id=?", run_id)
    return {name: (status, detail) for name, status, detail in rows}


def cleanup_marker(lab: Lab) -> tuple[str, Path, Path]:
    """A cleanup command that leaves a mark on the host it runs on."""
    command = f"date +%s > {lab.dir}/this-host/drill-cleanup"
    for host in (lab.primary, lab.standby):
        (host.run_dir / "drill-cleanup").unlink(missing_ok=True)
    return command, lab.standby.run_dir / "drill-cleanup", lab.primary.run_dir / "drill-cleanup"


def test_drill_onto_a_cold_standby_restores_checks_measures_and_changes_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    cleanup, standby_mark, primary_mark = cleanup_marker(lab)
    story = Story(lab, tmp_path, failover={"drill": {"cleanup": [cleanup]}})
    order = f"5,{time.time():.0f}.00 placed before the drill"
    lab.primary.ssh(f"echo '{order}' >> /srv/site/data/orders.csv")
    story.cli("backup", "run", check=True)
    backed_up = time.time()
    before = dns_view(lab)
    assert before[0] == [lab.primary.ip]

    plan = story.cli("drill", "shop", "--dry-run", check=True).stdout
    assert "drill of site shop: primary -> standby" in plan and "dry run" in plan, plan
    assert drill_runs(story) == []

    done = story.cli("drill", "shop", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drill passed: standby passed the site's checks" in done.stdout, done.stdout
    assert "(RTO)" in done.stdout and "(RPO)" in done.stdout

    # the standby serves the newest snapshot; the cleanup ran there; the data stays
    status, body = lab.https_get(lab.standby, "/data/orders.csv")
    assert status == 200 and order in body
    assert standby_mark.exists() and not primary_mark.exists()
    assert (lab.standby.site_dir / "index.html").exists()

    # nothing users see moved
    assert dns_view(lab) == before
    site = story.status()
    assert site["active"] == "primary"
    assert [r[1:3] for r in drill_runs(story)] == [("passed", "manual")]
    assert story.db("SELECT kind FROM runs WHERE kind != 'drill'") == []

    run = story.json("runs", "show", "1")
    steps = {s["name"]: s["status"] for s in run["steps"]}
    assert steps == {
        "preflight": "done",
        "restore": "done",
        "verify_current": "skipped",
        "after_restore": "done",
        "recheck": "done",
        "cleanup": "done",
        "drill_result": "done",
    }
    by_name = {s["name"]: s for s in run["steps"]}
    rto = by_name["drill_result"]["data"]["rto"]
    rpo = by_name["drill_result"]["data"]["rpo"]
    recheck_done = by_name["recheck"]["finished"]
    assert rto == pytest.approx(recheck_done - run["created"], abs=0.01)
    assert 0 <= rpo <= run["created"] - backed_up + 60

    # passed drills are quiet; status and runs list show it
    assert not any("drill" in t for t in lab.receiver.titles()), lab.receiver.titles()
    text = story.cli("status", check=True).stdout
    assert "drill: last drill #1 onto standby passed" in text and "RTO" in text, text
    listed = story.cli("runs", "list", check=True).stdout
    assert "shop drill (manual) primary -> standby: passed (RTO" in listed, listed

    report = story.cli("report", check=True).stdout
    assert "### Drills" in report and "an outage costs about" in report, report
    assert "target allows 43 minutes a month" in report, report
    data = json.loads(story.cli("report", "--format", "json", check=True).stdout)
    data = data["sites"]["shop"]["drills"]
    assert data["last_rto"] == pytest.approx(rto)
    assert [d["result"] for d in data["drills"]] == ["passed"]


def test_a_failing_after_restore_command_notifies_with_its_output(lab: Lab, tmp_path: Path) -> None:
    cleanup, standby_mark, _ = cleanup_marker(lab)
    broken = "echo 'nginx: [emerg] unknown directive \"gzip_typo\"' >&2; exit 3"
    story = Story(
        lab, tmp_path, failover={"after_restore": [broken], "drill": {"cleanup": [cleanup]}}
    )
    story.cli("backup", "run", check=True)
    before = dns_view(lab)

    done = story.cli("drill", "shop", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED at after_restore" in done.stderr, done.stderr

    notice = lab.receiver.wait_for("drill onto standby FAILED at after_restore")
    assert 'unknown directive "gzip_typo"' in notice["message"], notice
    assert "status 3" in notice["message"] and "Nothing else changed" in notice["message"]

    ((run_id, status, *_),) = drill_runs(story)
    assert status == "flunked"
    steps = steps_of(story, run_id)
    assert steps["after_restore"][0] == "failed"
    assert steps["recheck"] == ("skipped", "not reached (after_restore failed)")
    assert steps["cleanup"][0] == "done" and standby_mark.exists()  # left as found

    assert dns_view(lab) == before
    site = story.status()
    assert site["active"] == "primary"
    assert any("last drill (#1) FAILED at after_restore" in w for w in site["warnings"]), site
    assert story.db("SELECT kind FROM runs WHERE kind != 'drill'") == []


def test_a_standby_failing_the_checks_after_the_restore_notifies(lab: Lab, tmp_path: Path) -> None:
    # the after-restore command stops the standby's web server: the checks fail after it
    story = Story(
        lab,
        tmp_path,
        failover={"after_restore": lab.fence_commands, "recheck_timeout": "3s"},
    )
    story.cli("backup", "run", check=True)
    before = dns_view(lab)
    try:
        done = story.cli("drill", "shop", check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        notice = lab.receiver.wait_for("drill onto standby FAILED at recheck")
        assert "standby still fails the site's checks" in notice["message"], notice
        assert "https" in notice["message"]
        assert [r[1] for r in drill_runs(story)] == ["flunked"]
        assert dns_view(lab) == before
        assert story.status()["active"] == "primary"
    finally:
        if not lab.standby.web_running:
            lab.standby.start_web(lab.cert)


def test_a_warm_standby_drill_proves_it_is_current(lab: Lab, tmp_path: Path) -> None:
    story = Story(lab, tmp_path, failover={"standby": "warm"})
    story.cli("backup", "run", check=True)
    # the warm standby missed the newest data: an old copy, not touched since
    orders = lab.standby.site_dir / "data" / "orders.csv"
    orders.write_text("id,total\n1,10.00\n")
    os.utime(orders, (time.time() - 86400, time.time() - 86400))

    stale = story.cli("drill", "shop", check=False)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    notice = lab.receiver.wait_for("FAILED at verify_current")
    assert (
        "is not current" in notice["message"] and "/srv/site/data/orders.csv" in notice["message"]
    )

    story.cli("backup", "restore", "shop", "--to", "standby", check=True)
    current = story.cli("drill", "shop", "--json", check=False)
    assert current.returncode == 0, current.stdout + current.stderr
    runs = drill_runs(story)
    assert [r[1] for r in runs] == ["flunked", "passed"]
    steps = steps_of(story, runs[-1][0])
    assert steps["restore"][0] == "skipped" and steps["verify_current"][0] == "done"
    assert "0 older" not in steps["verify_current"][1] and "same" in steps["verify_current"][1]

    # kept current by other means (changed on the standby after the snapshot): still current
    with orders.open("a") as f:
        f.write("9,1.00 replicated to the standby after the backup\n")
    again = story.cli("drill", "shop", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "newer" in steps_of(story, drill_runs(story)[-1][0])["verify_current"][1]


EVERY = 6.0  # seconds between scheduled drills in the schedule tests


def assert_once_per_period(story: Story, count: int) -> None:
    runs = drill_runs(story)
    assert len(runs) >= count, runs
    assert all(r[1] == "passed" and r[2] == "schedule" for r in runs[:count]), runs
    for earlier, later in itertools.pairwise(runs):
        assert later[3] - earlier[3] >= EVERY - 0.5, runs  # once per period
        if earlier[4] is not None:
            assert later[3] >= earlier[4], runs  # never while a drill is open


def test_scheduled_drills_run_once_per_period_under_the_daemon(lab: Lab, tmp_path: Path) -> None:
    story = Story(lab, tmp_path, failover={"drill": {"every": f"{EVERY:g}s"}})
    story.cli("backup", "run", check=True)
    warned = story.cli("validate", check=True).stderr
    assert "site shop: no drill has passed yet, with drill.every 6s" in warned, warned
    story.start_agent()
    try:
        story.wait(
            lambda: len([r for r in drill_runs(story) if r[1] == "passed"]) >= 2,
            60,
            "two scheduled drills",
        )
    finally:
        story.stop_agent()
    assert_once_per_period(story, 2)
    assert not any("drill" in t for t in lab.receiver.titles())  # quiet when they pass
    assert lab.dns_answer() == [lab.primary.ip]
    report = story.cli("report", check=True).stdout
    assert "- RTO trend over the last " in report, report


def test_scheduled_drills_run_once_per_period_under_cron(lab: Lab, tmp_path: Path) -> None:
    story = Story(lab, tmp_path, failover={"drill": {"every": f"{EVERY:g}s"}})
    story.cli("backup", "run", check=True)
    codes: list[int] = []
    during: list[bool] = []  # a drill was running when a check ended
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        codes.append(story.cli("check", check=False).returncode)  # cron, sped up
        during.append(any(r[1] == "running" for r in drill_runs(story)))
        if len([r for r in drill_runs(story) if r[1] == "passed"]) >= 2:
            break
        time.sleep(0.5)
    assert set(codes) == {0}, codes  # a drill never holds the state lock: checks go on
    assert during.count(True) >= 2, during
    assert (tmp_path / "drill.log").exists()  # the drill process's log, beside the state
    story.wait(lambda: all(r[1] != "running" for r in drill_runs(story)), 30, "the drills")
    assert_once_per_period(story, 2)
    assert lab.dns_answer() == [lab.primary.ip]


def test_the_primary_going_down_abandons_a_drill_and_the_failover_does_not_wait(
    lab: Lab, tmp_path: Path
) -> None:
    # Last in the module: it fails over for real (DNS moves to the standby).
    slow = lab.standby.srv / "slow-drill"  # the standby's /srv/slow-drill
    story = Story(
        lab,
        tmp_path,
        failover={
            "after_restore": [
                "if [ -e /srv/slow-drill ]; then rm /srv/slow-drill; touch /srv/slept; sleep 15; fi"
            ],
            "recheck_timeout": "20s",
        },
    )
    story.cli("backup", "run", check=True)
    slow.write_text("")
    story.start_agent()
    drill: subprocess.Popen[str] | None = None
    try:
        story.both_up()
        drill = popen_failover(
            "drill", "shop", config=story.config, env=lab.env(), log=tmp_path / "drill.out"
        )
        # the drill's after-restore command sleeps (once: the failover's own does not)
        story.wait((lab.standby.srv / "slept").exists, 60, "the drill's after-restore command")
        lab.primary.blackhole()
        story.wait(lambda: len(story.runs()) == 2, 60, "the failover to start")
        assert drill.poll() is None  # the drill's command still runs: the failover did not wait
        story.wait(lambda: lab.dns_answer() == [lab.standby.ip], 60, "DNS to serve the standby")
        story.wait(lambda: story.runs()[1][2] == "done", 30, "the failover done")
        drill.wait(timeout=60)
    finally:
        if drill is not None and drill.poll() is None:
            drill.kill()
        story.stop_agent()
        slow.unlink(missing_ok=True)
        (lab.standby.srv / "slept").unlink(missing_ok=True)
        lab.primary.heal()
        if not lab.primary.web_running:
            lab.primary.start_web(lab.cert)
    assert drill.returncode == 1
    assert "drill #1 was abandoned: primary is down" in (tmp_path / "drill.out").read_text()
    ((drill_id, status, _, _, abandoned_at, detail),) = drill_runs(story)
    assert status == "abandoned" and "primary is down" in detail, detail
    failover = story.db("SELECT created, status FROM runs WHERE kind='failover'")
    assert failover[0][1] == "done"
    assert 0 <= failover[0][0] - abandoned_at < 5  # started at once, in the same round
    steps = steps_of(story, drill_id)
    assert steps["recheck"][0] == "pending" and steps["drill_result"][0] == "pending"
    assert not any("drill onto standby FAILED" in t for t in lab.receiver.titles())
