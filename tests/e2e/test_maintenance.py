"""Quiet on purpose, end to end through the CLI with cron-style rounds against a real web
server on loopback: a paused site is probed and recorded, nothing is declared down or
notified, status and the report show it and uptime leaves it out; the pause runs out by
itself and says so, and only then does the outage count (from its first failure after
the pause). A window in the config does the same; a site in maintenance does not fail
over while another site does. Notifications follow each site's own targets, and an
ongoing outage is reminded to the targets that want reminders."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from tests.support import wait_for, write
from tests.support.cli import failover, failover_json
from tests.support.receiver import NotificationReceiver
from tests.support.web import LoopbackWeb


def _site(name: str, port: int, extra: str = "", address: str = "127.0.0.1") -> str:
    return f"""\
  {name}:
    hostname: {name}.test
    endpoints:
      primary: {{address: {address}}}
    checks: [{{type: http, port: {port}, expect_body: Shop, timeout: 0.5s}}]
    policy: {{interval: 1s, down_after: 1s, up_after: 1s}}
{extra}"""


def _config(tmp_path: Path, body: str, notify: str) -> Path:
    return write(tmp_path / "failover.yaml", f"state: state.db\nnotify:\n{notify}sites:\n{body}")


def _rounds(config: Path, n: int, gap: float = 0.6) -> list[str]:
    out = []
    for _ in range(n):
        proc = failover("check", config=config)
        assert proc.returncode == 0, proc.stderr
        out.append(proc.stderr)
        time.sleep(gap)
    return out


def test_a_pause_keeps_a_site_quiet_until_it_runs_out(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<title>Shop</title>")
    with LoopbackWeb(www) as web, NotificationReceiver() as receiver:
        config = _config(tmp_path, _site("shop", web.port), f"  - url: {receiver.url}\n")
        _rounds(config, 2)
        paused = failover(
            "pause", "shop", "--for", "25s", "--reason", "kernel update", config=config
        )
        assert (
            paused.returncode == 0
            and "paused until" in paused.stdout
            and "kernel update" in paused.stdout
        )
        started = time.time()
        web.stop()  # the work: the web server is down meanwhile
        proc = failover("check", "--json", config=config)
        check = json.loads(proc.stdout)
        assert "shop" in check["maintenance"] and check["endpoints"][0]["observation"] is None
        assert "in maintenance (paused until" in proc.stderr
        logs = _rounds(config, 2)
        assert "in maintenance" not in "".join(logs)  # said once, when it began
        status = failover_json("status", config=config)
        shop = status["sites"]["shop"]
        assert shop["endpoints"]["primary"]["health"] == "up"  # nothing declared down
        assert shop["maintenance"]["active"]["kind"] == "pause"
        assert shop["maintenance"]["active"]["reason"] == "kernel update"
        text = failover("status", config=config).stdout
        assert "maintenance: IN MAINTENANCE: paused until" in text
        assert not [t for t in receiver.titles() if "DOWN" in t]

        # long enough for the checks above on a loaded machine (CI runs tests side by side)
        wait_for(lambda: time.time() > started + 25.2, 40, "the pause to run out")
        first = failover("check", config=config)
        assert "the pause ran out (kernel update): watching again" in first.stderr
        receiver.wait_for("the pause ran out")
        # judged afresh: the first failure after the pause starts the count of down_after
        assert "-> suspect" in first.stderr and "-> down" not in first.stderr
        later = _rounds(config, 3)
        assert any("-> down" in line for line in later)
        receiver.wait_for("is DOWN")

        report = failover_json("report", config=config)
        assert report["version"] == 1
        (period,) = report["sites"]["shop"]["maintenance"]
        assert period["kind"] == "pause" and period["reason"] == "kernel update"
        assert period["end"] - period["start"] >= 2
        markdown = failover("report", config=config).stdout
        assert "Maintenance (not counted in uptime)" in markdown and "kernel update" in markdown
        month = report["sites"]["shop"]["endpoints"]["primary"]["months"][-1]
        rounds_span = time.time() - (report["since"])
        assert month["watched_seconds"] < rounds_span - 2  # the pause is not watched time


def test_resume_ends_a_pause_and_a_window_is_maintenance_too(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<title>Shop</title>")
    opened = (datetime.now() - timedelta(minutes=1)).strftime("%H:%M")
    window = f'    maintenance: [{{at: "{opened}", duration: 10m, reason: nightly}}]\n'
    with LoopbackWeb(www) as web, NotificationReceiver() as receiver:
        config = _config(
            tmp_path,
            _site("shop", web.port) + _site("blog", web.port, window),
            f"  - url: {receiver.url}\n",
        )
        assert failover("pause", "shop", config=config).returncode == 0
        assert "until resumed" in failover("status", config=config).stdout
        resumed = failover("resume", "shop", config=config)
        assert resumed.returncode == 0 and "resumed" in resumed.stdout
        again = failover("resume", "shop", config=config)
        assert again.returncode == 0 and "not paused: nothing to do" in again.stdout
        window_resume = failover("resume", "blog", config=config)
        assert "still in maintenance: maintenance window until" in window_resume.stdout
        web.stop()
        _rounds(config, 4)
        status = failover_json("status", config=config)
        assert status["sites"]["blog"]["maintenance"]["active"]["kind"] == "window"
        # in its window from the start: never judged, never down
        assert status["sites"]["blog"]["endpoints"]["primary"]["health"] == "unknown"
        assert status["sites"]["shop"]["endpoints"]["primary"]["health"] == "down"
        titles = receiver.titles()
        assert any("[shop] primary is DOWN" in t for t in titles)
        assert not any("[blog]" in t for t in titles)
        bad = failover("pause", "shpo", config=config)
        assert bad.returncode == 2 and "did you mean shop?" in bad.stderr


def test_no_failover_during_maintenance_while_another_site_fails_over(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<title>Shop</title>")
    with LoopbackWeb(www) as web:
        two = """\
    endpoints:
      primary: {address: 127.0.0.1}
      standby: {address: 127.0.0.2}
    failover: {standby: warm}
"""
        body = ""
        for name in ("shop", "blog"):
            site = _site(name, web.port).replace(
                "    endpoints:\n      primary: {address: 127.0.0.1}\n", two
            )
            body += site.replace("up_after: 1s}", "up_after: 1s, auto_failover: true, cooldown: 0}")
        config = _config(tmp_path, body, "  - url: json://127.0.0.1:9/none\n")
        assert failover("pause", "blog", "--for", "1h", config=config).returncode == 0
        web.stop()
        web.host = "127.0.0.2"  # now only the standby's address answers
        web.start()
        _rounds(config, 5)
        runs = failover_json("runs", "list", config=config)["runs"]
        sites = {r["site"] for r in runs}
        assert "shop" in sites and "blog" not in sites, runs
        status = failover_json("status", config=config)
        assert status["sites"]["blog"]["active"] == "primary"


def test_site_notification_routing_and_reminders(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    with (
        LoopbackWeb(www) as web,
        NotificationReceiver() as everyone,
        NotificationReceiver() as team,
        NotificationReceiver() as pager,
    ):
        routed = (
            "    notify:\n      replace: true\n      targets:\n"
            f"        - {{url: '{team.url}'}}\n"
            f"        - {{url: '{pager.url}', remind_every: 1s, events: [down]}}\n"
        )
        config = _config(
            tmp_path,
            _site("shop", web.port, routed) + _site("blog", web.port),
            f"  - url: {everyone.url}\n",
        )
        _rounds(config, 5, gap=0.8)  # nothing serves: both sites go down
        team.wait_for("[shop] primary is DOWN")
        pager.wait_for("[shop] primary is DOWN")
        everyone.wait_for("[blog] primary is DOWN")
        assert not any("[shop]" in t for t in everyone.titles())  # replace: only its own
        assert not any("[blog]" in t for t in team.titles() + pager.titles())
        # reminders: only the pager (remind_every), "still DOWN", while it stays down
        wait_for(lambda: any("still DOWN" in t for t in pager.titles()), 15, "a reminder")
        assert not any("still DOWN" in t for t in team.titles() + everyone.titles())
        before = len([t for t in pager.titles() if "still DOWN" in t])
        _rounds(config, 2, gap=1.1)
        wait_for(
            lambda: len([t for t in pager.titles() if "still DOWN" in t]) > before,
            15,
            "another reminder",
        )
        json.dumps(pager.messages)  # the messages are plain JSON
