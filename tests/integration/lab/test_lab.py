"""The lab itself, for real: each host sees its own /srv over SSH, serves its own site over
HTTPS with the site's certificate, reaches SeaweedFS from inside through the forwarder;
PowerDNS answers; outages behave as the watch expects; the config it writes validates; and
nothing is left behind, also after a crashed run."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failover.config.models import HttpCheck, TcpCheck
from failover.watch.probes.engine import run_probes
from failover.watch.probes.result import ProbeResult
from tests.support import require_root, wait_for
from tests.support.cli import failover
from tests.support.lab import HOSTNAME, REPO_ROOT, Lab, LabHost, cleanup_lab_leftovers
from tests.support.netns import PREFIX

pytestmark = [pytest.mark.integration, pytest.mark.netns]

HTTPS = HttpCheck(type="https", path="/", expect_body="<title>Shop", timeout=0.8)
TCP22 = TcpCheck(type="tcp", port=22, timeout=0.8)


def probe(lab: Lab, *hosts: LabHost, check: HttpCheck | TcpCheck = HTTPS) -> dict[str, ProbeResult]:
    """One probe round from the root namespace, as the agent does, trusting the lab CA."""
    assert lab.ca is not None
    saved = {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ.update({k: v for k, v in lab.env().items() if k.startswith("SSL_")})
    try:
        return run_probes([(h.name, check, h.ip, HOSTNAME) for h in hosts])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_each_host_sees_its_own_srv_over_ssh_and_the_root_srv_is_untouched(lab: Lab) -> None:
    root_srv_before = sorted(os.listdir("/srv"))
    primary = lab.primary.ssh("cat /srv/site/index.html; hostname -I 2>/dev/null || true")
    standby = lab.standby.ssh("cat /srv/site/index.html")
    assert lab.marker in primary.stdout and lab.outdated_marker not in primary.stdout
    assert lab.outdated_marker in standby.stdout and lab.marker not in standby.stdout
    # A command over SSH lives in the host's network namespace too.
    addrs = lab.primary.ssh("ip -4 -o addr show").stdout
    assert lab.primary.ip in addrs and lab.standby.ip not in addrs
    # A write on one host lands in that host's directory only.
    lab.standby.ssh("echo written-on-standby > /srv/site/note.txt")
    assert (lab.standby.site_dir / "note.txt").read_text() == "written-on-standby\n"
    assert not (lab.primary.site_dir / "note.txt").exists()
    lab.standby.ssh("rm /srv/site/note.txt")
    assert sorted(os.listdir("/srv")) == root_srv_before
    assert "site" not in root_srv_before or Path("/srv/site").resolve() != lab.primary.site_dir


def test_the_host_key_is_checked(lab: Lab) -> None:
    # Only the lab's known_hosts vouches for the hosts: without it, ssh refuses.
    argv = lab.primary.ssh_argv("true")
    argv[argv.index(f"UserKnownHostsFile={lab.known_hosts}")] = "UserKnownHostsFile=/dev/null"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 255 and "verification failed" in proc.stderr


def test_https_answers_with_the_site_certificate_from_the_root_namespace(lab: Lab) -> None:
    results = probe(lab, lab.primary, lab.standby)
    assert results["primary"].ok, results["primary"].detail
    assert results["standby"].ok, results["standby"].detail
    status, body = lab.https_get(lab.primary)
    assert status == 200 and lab.marker in body
    status, body = lab.https_get(lab.standby)
    assert status == 200 and lab.outdated_marker in body
    # The certificate is for the site's name, issued by the lab CA.
    assert lab.ca is not None
    ctx = ssl.create_default_context(cafile=str(lab.ca.cert_path))
    with (
        socket.create_connection((lab.standby.ip, 443), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=HOSTNAME) as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None and ("DNS", HOSTNAME) in cert["subjectAltName"]
    # Another name fails verification: the check verifies for real.
    with (
        socket.create_connection((lab.standby.ip, 443), timeout=3) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="other.example.test")


def test_restic_inside_a_host_reaches_seaweedfs_through_the_forwarder(lab: Lab) -> None:
    # The same repository URL (127.0.0.1:<s3 port>) from inside the primary, with the
    # secrets on stdin, never on a command line.
    env = lab.s3_env()
    exports = "".join(f"export {k}='{v}'\n" for k, v in env.items())
    backup = lab.primary.ssh("sh -s", input=exports + "restic backup --json /srv/site\n")
    summary = json.loads(backup.stdout.strip().splitlines()[-1])
    assert summary["message_type"] == "summary" and summary["files_new"] >= 3
    snapshot = summary["snapshot_id"]
    # Seen from the root namespace (the agent's side) and from the standby.
    listed = json.loads(lab.restic("snapshots", "--json").stdout)
    assert any(s["short_id"] == snapshot or s["id"].startswith(snapshot) for s in listed)
    # Restored onto the standby at / : the standby now serves the primary's data.
    lab.standby.ssh("sh -s", input=exports + f"restic restore {snapshot} --target /\n")
    status, body = lab.https_get(lab.standby)
    assert status == 200 and lab.marker in body
    assert (lab.standby.site_dir / "data" / "orders.csv").read_text() == (
        lab.primary.site_dir / "data" / "orders.csv"
    ).read_text()
    # Back to the outdated copy for the other tests.
    (lab.standby.site_dir / "index.html").write_text(
        (lab.primary.site_dir / "index.html").read_text().replace(lab.marker, lab.outdated_marker)
    )


def test_powerdns_serves_the_site_record(lab: Lab) -> None:
    import dns.message
    import dns.query

    assert lab.pdns is not None
    q = dns.message.make_query(HOSTNAME + ".", "A")
    r = dns.query.udp(q, "127.0.0.1", port=lab.pdns.dns_port, timeout=2)
    assert [rd.to_text() for rrset in r.answer for rd in rrset] == [lab.primary.ip]
    assert lab.dns_answer() == [lab.primary.ip]


def test_outages_blackhole_reset_link_down_and_heal(lab: Lab) -> None:
    try:
        lab.primary.blackhole()
        t0 = time.monotonic()
        results = probe(lab, lab.primary, lab.standby)
        assert not results["primary"].ok and "timeout" in results["primary"].detail
        assert results["standby"].ok
        assert time.monotonic() - t0 < 3
        lab.primary.heal()
        assert probe(lab, lab.primary)["primary"].ok

        lab.primary.reset(443)
        t0 = time.monotonic()
        result = probe(lab, lab.primary)["primary"]
        assert not result.ok and time.monotonic() - t0 < 0.7, result.detail
        assert probe(lab, lab.primary, check=TCP22)["primary"].ok  # only 443 is reset
        lab.primary.heal()

        lab.primary.link_down()
        assert not probe(lab, lab.primary, check=TCP22)["primary"].ok
        assert probe(lab, lab.standby, check=TCP22)["standby"].ok
    finally:
        lab.primary.heal()
    assert probe(lab, lab.primary)["primary"].ok


def test_the_web_server_stops_and_starts_and_the_fence_stops_it_over_ssh(lab: Lab) -> None:
    try:
        lab.primary.stop_web()
        result = probe(lab, lab.primary)["primary"]
        assert not result.ok and "refused" in result.detail
        lab.primary.start_web()
        assert probe(lab, lab.primary)["primary"].ok

        for command in lab.fence_commands:  # as the runbook runs them on the old primary
            lab.primary.ssh(command)
        wait_for(lambda: not lab.primary.web_running, 5, "the fenced web server to stop")
        results = probe(lab, lab.primary, lab.standby)
        assert not results["primary"].ok and results["standby"].ok
        for command in lab.after_restore_commands:  # both pass where the data is
            lab.primary.ssh(command)
    finally:
        lab.primary.start_web()
    assert probe(lab, lab.primary)["primary"].ok


def test_the_canary_can_be_cut(lab: Lab) -> None:
    canary = TcpCheck(type="tcp", port=lab.canary_port, timeout=0.5)
    assert run_probes([("c", canary, lab.canary.ip, None)])["c"].ok
    try:
        lab.cut_canary()
        result = run_probes([("c", canary, lab.canary.ip, None)])["c"]
        assert not result.ok and "timeout" in result.detail
    finally:
        lab.heal_canary()
    assert run_probes([("c", canary, lab.canary.ip, None)])["c"].ok


def test_the_written_config_validates_and_takes_overrides(lab: Lab, tmp_path: Path) -> None:
    config = lab.write_config()
    proc = failover("validate", config=config, env=lab.env())
    assert proc.returncode == 0, proc.stderr
    assert "readable by others" not in proc.stderr and "inline" not in proc.stderr
    text = config.read_text()
    assert lab.s3_secret_file.read_text().strip() not in text  # secrets by reference only
    assert lab.restic_password_file.read_text().strip() not in text

    watch_only = lab.write_config(
        tmp_path / "watch.yaml",
        backup=None,
        dns=None,
        failover=None,
        dns_providers=None,
        policy={"auto_failover": False},
    )
    proc = failover("validate", config=watch_only, env=lab.env())
    assert proc.returncode == 0, proc.stderr
    site = lab.config_dict(backup=None, policy={"auto_failover": False})["sites"]["shop"]
    assert "backup" not in site and site["policy"]["auto_failover"] is False
    assert site["policy"]["interval"] == "1s"  # merged, not replaced

    status = failover("check", "--json", config=watch_only, env=lab.env())
    assert status.returncode == 0, status.stderr
    round_ = json.loads(status.stdout)
    assert round_["network_ok"] is True
    health = {e["endpoint"]: e["health"] for e in round_["endpoints"]}
    assert health == {"primary": "up", "standby": "up"}, round_


def test_teardown_leaves_nothing_and_a_crashed_labs_leftovers_are_removed() -> None:
    require_root()
    with Lab(dns=False) as small:
        anchors = [h.anchor.pid for h in small.hosts.values() if h.anchor is not None]
        assert small.s3 is not None and small.s3.proc is not None
        weed = small.s3.proc.pid
        names = [small.primary.net.name, small.standby.net.name, small.canary.name]
        directory = small.dir
    assert not directory.exists()
    for pid in [*anchors, weed]:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)

    # A crashed run: the process holding a lab is killed outright.
    code = (
        "import sys, time\nfrom tests.support.lab import Lab\n"
        "lab = Lab(dns=False).start()\n"
        "print(lab.dir, lab.s3.proc.pid, lab.primary.net.name, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert len(line) == 3, "the child lab did not start"
        crashed_dir, crashed_weed, crashed_ns = Path(line[0]), int(line[1]), line[2]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert crashed_dir.exists() and Path(f"/proc/{crashed_weed}").exists()
    cleanup_lab_leftovers()
    # (Another test process may have cleaned part of it up first: check the outcome, not
    # what this call reports.)
    assert not crashed_dir.exists()
    wait_for(
        lambda: not Path(f"/proc/{crashed_weed}").exists() or _zombie(crashed_weed),
        10,
        "the crashed lab's SeaweedFS to be stopped",
    )
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert crashed_ns not in listed
    assert not list(Path("/tmp").glob(f"seaweedfs-*-grpc-{line[1]}*.sock"))
    assert all(
        not ns.startswith(PREFIX) or ns.split()[0] not in names for ns in listed.splitlines()
    )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
