"""Issue 10 on the lab, with an EMPTY cold standby (a bare server in another cloud: sshd and
a web server, no copy of the site): it is ready by SSH, restored onto and takes over; files
deleted on it during the outage stay deleted when the site fails back; dry runs say what
would fail. One lab for the module: each test leaves the hosts healed and serving.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_failover_story import Story
from tests.support.lab import Lab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab(standby_content="empty")


# The site's own page, which a bare server does not have (/healthz the test web server
# answers by itself).
SITE_CHECKS = [
    {"type": "https", "path": "/", "expect_body": "<title>Shop", "timeout": "0.8s"},
    {"type": "tcp", "port": 22, "timeout": "0.8s"},
]


def tree(root: Path) -> dict[str, str]:
    """Every file under root (relative path -> sha256); directories as 'dir'."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_an_empty_cold_standby_is_restored_onto_takes_over_and_failback_keeps_deletions(
    lab: Lab, tmp_path: Path
) -> None:
    assert list(lab.standby.site_dir.iterdir()) == []  # nothing of the site there
    (lab.primary.site_dir / "data" / "old-report.csv").write_text("obsolete\n")
    story = Story(lab, tmp_path, checks=SITE_CHECKS)
    assert story.cli("backup", "run").returncode == 0
    story.start_agent()
    try:
        # the standby fails the site's checks (404) but is ready: it answers over SSH
        story.wait(lambda: story.health("primary") == "up", 30, "the primary up")
        story.wait(
            lambda: story.status()["endpoints"]["standby"]["readiness"]["ready"] is True,
            30,
            "the empty standby to be ready",
        )
        site = story.status()
        assert site["endpoints"]["standby"]["health"] != "up"
        assert site["endpoints"]["standby"]["readiness"]["mode"] == "cold"
        text = story.cli("status").stdout
        assert "standby standby: ready for a failover (cold): answers over SSH" in text, text

        lab.primary.blackhole()
        story.wait(lambda: lab.dns_answer() == [lab.standby.ip], 90, "DNS to serve the standby")
        story.wait(lambda: story.status()["active"] == "standby", 30, "standby active")
        story.wait(lambda: story.runs() and story.runs()[0][2] == "done", 30, "the run done")
    finally:
        story.stop_agent()
    steps = {
        s["name"]: (s["status"], s["detail"]) for s in story.json("runs", "show", "1")["steps"]
    }
    assert steps["restore"][0] == "done" and steps["recheck"][0] == "done"
    assert "answers over SSH" in steps["preflight"][1]
    status, index = lab.https_get(lab.standby, "/")
    assert status == 200 and lab.marker in index
    assert not any("NO STANDBY IS READY" in t for t in lab.receiver.titles())

    # during the outage the standby takes writes and deletions
    lab.standby.ssh(
        "rm /srv/site/data/old-report.csv && echo '9,99.00' >> /srv/site/data/orders.csv"
    )
    lab.primary.heal()
    lab.primary.start_web(lab.cert)
    done = story.cli("switch", "shop", "--to", "primary", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab.dns_answer() == [lab.primary.ip]
    # the primary now holds exactly what the standby held: the deleted file stays deleted
    assert not (lab.primary.site_dir / "data" / "old-report.csv").exists()
    assert tree(lab.primary.site_dir) == tree(lab.standby.site_dir)
    run = story.json("runs", "show", "2")
    restore = next(s for s in run["steps"] if s["name"] == "restore")
    assert "removed 1 path(s) the snapshot does not hold" in restore["detail"], restore
    assert "/srv/site/data/old-report.csv" in restore["detail"], restore


def test_dry_runs_tell_the_truth_and_a_refused_run_is_closed(lab: Lab, tmp_path: Path) -> None:
    """`switch --dry-run` runs the read-only preflight: it names what would fail (the standby
    refusing connections, the DNS API down) and changes nothing; with --yes such a run is
    refused and closed (no open run, nothing listed twice); a run that fails later says
    how to give it up."""
    story = Story(lab, tmp_path, checks=SITE_CHECKS)
    assert story.cli("backup", "run").returncode == 0
    story.cli("check")  # a first round: state, health
    lab.standby.reset(22)
    try:
        dry = story.cli("switch", "shop", "--to", "standby", "--dry-run", check=False)
        assert dry.returncode == 1, dry.stdout + dry.stderr
        assert "dry run: the run would stop at preflight: standby is not ready (cold): ssh:" in (
            dry.stdout
        ), dry.stdout
        assert "nothing changed" in dry.stdout
        assert story.runs() == []

        refused = story.cli("switch", "shop", "--to", "standby", "--yes", check=False)
        assert refused.returncode == 1
        assert "did not start" in refused.stderr and "the run is closed" in refused.stderr
        assert [r[1:3] for r in story.runs()] == [("switch", "refused")]
        site = story.status()
        assert "run" not in site and not any("is open" in w for w in site["warnings"])  # closed
    finally:
        lab.standby.heal()

    lab.pdns.stop()
    try:
        dry = story.cli("switch", "shop", "--to", "standby", "--dry-run", "--json", check=False)
        assert dry.returncode == 1
        preflight = json.loads(dry.stdout)["preflight"]
        assert preflight["ok"] is False and "DNS provider pdns" in preflight["detail"], preflight
    finally:
        lab.pdns.start()
    ok = story.cli("switch", "shop", "--to", "standby", "--dry-run", check=False)
    assert ok.returncode == 0 and "dry run: preflight passes" in ok.stdout, ok.stdout + ok.stderr
    assert lab.dns_answer() == [lab.primary.ip]

    # a run that fails after preflight: open, listed once, and the hint names `runs abandon`
    (tmp_path / "later").mkdir()
    failing = Story(
        lab, tmp_path / "later", checks=SITE_CHECKS, failover={"after_restore": ["false"]}
    )
    stopped = failing.cli("switch", "shop", "--to", "standby", "--yes", check=False)
    assert stopped.returncode == 1
    assert "failover runs abandon 1" in stopped.stderr, stopped.stderr
    text = failing.cli("status").stdout
    assert text.count("run #1") == 1, text
    assert failing.cli("runs", "abandon", "1").returncode == 0
    assert lab.dns_answer() == [lab.primary.ip]
