"""The demonstration: the night the primary falls over, on real servers on this machine.

Two "VPSes" (network namespaces with sshd and a web server, each with its own /srv),
PowerDNS serving the zone, a restic repository on SeaweedFS's S3 and a local receiver for
notifications. The agent backs up the primary, a drill rehearses the failover onto the
standby (DNS untouched) and measures its RTO; then the agent watches both, and when the
primary is cut off (nftables drops everything) it restores the backup onto the standby,
switches DNS, verifies it and notifies, taking about the drill's RTO once the primary is
declared down. Then the status, the run and the report; the metrics Prometheus scrapes,
the HTML report with its charts and the status page published to S3.

    examples/demo/run.sh            # as root; or: python3 -m examples.demo
    examples/demo/run.sh --watchers # three watchers deciding together; one is partitioned
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def show(text: str) -> None:
    for line in text.rstrip().splitlines():
        print(f"   {line}", flush=True)


class Failover:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config, self.env = config, {**os.environ, **env}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "failover", "--config", str(self.config), *args]

    def run(self, *args: str, check: bool = True) -> str:
        print(f"{DIM}   $ failover {' '.join(args)}{RESET}", flush=True)
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, env=self.env, cwd=REPO
        )
        if check and proc.returncode != 0:
            show(proc.stdout + proc.stderr)
            raise SystemExit(f"demo: `failover {' '.join(args)}` exited {proc.returncode}")
        return proc.stdout + proc.stderr

    def json(self, *args: str) -> Any:
        proc = subprocess.run(
            self.argv(*args, "--json"), capture_output=True, text=True, env=self.env, cwd=REPO
        )
        return json.loads(proc.stdout) if proc.returncode == 0 else None


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out after {timeout:.0f}s waiting for {what}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    wanted = ("failover_endpoint_up", "failover_active_endpoint_info", "failover_runs_total",
              "failover_probe_success", "failover_backup_newest_snapshot_age_seconds")  # fmt: skip
    return "\n".join(line for line in text.splitlines() if line.startswith(wanted))


def _run(fo: Failover, kind: str) -> dict[str, Any]:
    """The newest run of `kind`, as `failover runs list --json` gives it."""
    runs = [r for r in (fo.json("runs", "list") or {}).get("runs", []) if r["kind"] == kind]
    if not runs:
        raise SystemExit(f"demo: no {kind} run")
    return dict(runs[-1])


def _rto(fo: Failover, kind: str) -> float:
    """Seconds from the run's start until its recheck step passed (a drill's RTO)."""
    run = _run(fo, kind)
    recheck = next(s for s in run["steps"] if s["name"] == "recheck")
    return float(recheck["finished"]) - float(run["created"])


def watchers_demo() -> int:
    """Three watchers in three network namespaces decide together through S3 (SeaweedFS,
    conditional writes): one of them loses its path to the primary, and nothing fails over;
    then the primary falls over for everyone, and the leader alone fails over."""
    from tests.support.lab import HOSTNAME
    from tests.support.quorum_lab import QuorumLab

    say(
        "building the lab: primary and standby, PowerDNS, S3 (SeaweedFS) and three watchers, "
        "each in its own network namespace (a and b may act, c votes only)"
    )
    with QuorumLab("s3") as q:
        agents = q.start_agents(backup=None, failover={"standby": "warm", "after_restore": []})
        wait(q.all_up, 60, "every watcher to see both endpoints up")
        wait(lambda: q.leader() is not None, 30, "a leader")
        leader = q.leader() or "a"
        other = "b" if leader == "a" else "a"
        time.sleep(2)
        show(agents[leader].cli("status").stdout)

        say(f"watcher {other}'s own path to the primary breaks (nftables in its namespace)")
        q.partition(other)
        time.sleep(8)  # well past down_after for that watcher
        show(agents[other].cli("status").stdout)
        show(f"runs started by anyone: {sum(len(q.runs(w)) for w in q.watchers)}")
        show(f"PowerDNS answers {HOSTNAME} A {', '.join(q.lab.dns_answer())} (the primary)")

        say(
            f"the path is repaired; then the primary falls over for everyone ({time.strftime('%H:%M:%S')})"
        )
        q.heal_partition(other)
        wait(q.all_up, 30, "every watcher to see the primary up again")
        cut = time.monotonic()
        q.lab.primary.blackhole()
        wait(lambda: q.lab.dns_answer() == [q.lab.standby.ip], 60, "the group's failover")
        show(f"DNS serves the standby {time.monotonic() - cut:.1f}s after the cut")
        time.sleep(2)
        show(agents[other].cli("status").stdout)
        say("notifications (only the leader sends them)")
        for title in q.titles():
            show(f"- {title}")
        say("the report as the voter-only watcher c saw it")
        show(agents["c"].cli("report").stdout)
    say("done: the lab is removed")
    return 0


def main() -> int:
    from tests.support.lab import HOSTNAME, Lab

    if os.geteuid() != 0:
        print("the demonstration needs root (network namespaces)", file=sys.stderr)
        return 2
    if "--watchers" in sys.argv[1:]:
        return watchers_demo()
    say(
        "building the lab: two VPSes (network namespaces with sshd and a web server), "
        "PowerDNS, an S3 repository (SeaweedFS), a notification receiver"
    )
    with Lab(standby_content="outdated") as lab:
        metrics_port = _free_port()
        assert lab.s3 is not None
        config = lab.write_config(
            metrics={"listen": f"127.0.0.1:{metrics_port}"},
            status_page={  # in real life: a bucket at yet another provider
                "bucket": f"s3://{lab.bucket}/status/",
                "endpoint": lab.s3.endpoint,
                "addressing": "path",
                "access_key_id": "${FOT_LAB_S3_ACCESS_KEY}",
                "secret_access_key": f"file:{lab.s3_secret_file}",
                "title": "Example Shop status",
                "every": "1m",
            },
        )
        fo = Failover(config, lab.env())
        show(f"primary  {lab.primary.ip}  serves https://{HOSTNAME}/ from its /srv/site")
        show(f"standby  {lab.standby.ip}  another cloud; holds an outdated copy")
        show(
            f"DNS      {HOSTNAME} A -> {', '.join(lab.dns_answer())} (PowerDNS "
            f"{lab.pdns.nameserver if lab.pdns else '-'})"
        )
        show(f"config   {config}")

        say("the config is valid")
        show(fo.run("validate"))

        say("backing up the primary (restic runs on it over SSH, into S3 at another provider)")
        marker = f"order placed at {time.strftime('%H:%M:%S')}"
        lab.primary.ssh(f"echo '{marker}' >> /srv/site/data/orders.csv")
        show(fo.run("backup", "run"))
        show(fo.run("backup", "list"))

        say(
            "a drill: rehearse the failover onto the standby (restore, after-restore commands, "
            "the site's checks); DNS and the active endpoint are not touched"
        )
        show(fo.run("drill", "shop"))
        drill_rto = _rto(fo, kind="drill")
        show(f"PowerDNS still answers {HOSTNAME} A {', '.join(lab.dns_answer())} (the primary)")

        say("starting the agent (interval 1s, down after 3s, auto-failover on)")
        log_path = lab.dir / "agent.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed below
        agent = subprocess.Popen(
            fo.argv("agent"), stdout=log, stderr=subprocess.STDOUT, env=fo.env, cwd=REPO
        )
        try:
            wait(
                lambda: (
                    (st := fo.json("status")) is not None
                    and all(e["health"] == "up" for e in st["sites"]["shop"]["endpoints"].values())
                ),
                30,
                "both endpoints up",
            )
            show(fo.run("status"))

            say(
                f"the provider falls over: the primary is cut off (nftables drops everything) "
                f"at {time.strftime('%H:%M:%S')}"
            )
            cut = time.monotonic()
            lab.primary.blackhole()
            seen = 0

            def story_done() -> bool:
                nonlocal seen
                lines = log_path.read_text().splitlines()
                for line in lines[seen:]:
                    show(line)
                seen = len(lines)
                return lab.dns_answer() == [lab.standby.ip] and (
                    (st := fo.json("status")) is not None
                    and st["sites"]["shop"]["active"] == "standby"
                )

            wait(story_done, 120, "the failover")
            took = time.monotonic() - cut
            time.sleep(1)
            story_done()

            say(f"{HOSTNAME} now resolves to the standby ({took:.1f}s after the cut)")
            failover_rto = _rto(fo, kind="failover")
            show(
                f"the drill measured an RTO of {drill_rto:.1f}s; the real failover took "
                f"{failover_rto:.1f}s from its start to the standby passing the checks, "
                f"{took:.1f}s from the cut to DNS (down_after 3s, then the failover)"
            )
            show(f"PowerDNS answers {HOSTNAME} A {', '.join(lab.dns_answer())}")
            status_code, body = lab.https_get(lab.standby, "/data/orders.csv")
            show(f"https://{HOSTNAME}/data/orders.csv from the standby: HTTP {status_code}")
            show(body.strip().splitlines()[-1])
            if marker not in body:
                raise SystemExit("demo: the standby does not serve the backed-up data")

            say("notifications the owner received")
            for message in lab.receiver.messages:
                show(f"- {message.get('title')}")

            say("status")
            show(fo.run("status"))
            say("the runs: the drill, then the failover, step by step")
            show(fo.run("runs", "list"))
            show(fo.run("runs", "show", str(_run(fo, "failover")["id"])))

            say(
                "the primary's provider comes back: it is NOT made active again (it holds "
                "an old copy); it is fenced"
            )
            lab.primary.heal()
            wait(
                lambda: any("is back" in str(m.get("title")) for m in lab.receiver.messages),
                60,
                "the old primary to be noticed",
            )
            time.sleep(1)
            show(fo.run("status"))

            say(f"what Prometheus scrapes from the agent (http://127.0.0.1:{metrics_port}/metrics)")
            show(_scrape(metrics_port))
        finally:
            agent.terminate()
            agent.wait(timeout=30)
            log.close()

        say("the report: a timeline and uptime, evidence for the provider")
        show(fo.run("report"))

        out = Path(os.environ.get("FAILOVER_DEMO_OUT", "/tmp/failover-demo"))
        out.mkdir(parents=True, exist_ok=True)
        say(f"the pictures: the HTML report and the status page, written to {out}")
        fo.run("report", "--format", "html", "--out", str(out / "report.html"))
        show(f"{out / 'report.html'}  (inline SVG charts; attach it to the claim)")
        show(fo.run("status-page", "publish"))
        show(fo.run("status-page", "render", "--out", str(out / "status-page")))
        show("open them in a browser; the published page lives in the bucket, not on your servers")
        say("done: the lab is removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
