"""`failover migrate` end to end on real things (issue #6).

The lab (tests/support/lab.py) is the site as it runs today: the primary (a network
namespace with sshd, a web server and its own /srv), a standby, PowerDNS serving the zone,
a restic repository on SeaweedFS's S3 and a notification receiver. The new server is
created through libcloud's EC2 driver (the test-only shim) against moto's EC2 in server
mode; moto gives the first server of a fresh subnet the address network+4, and the test
puts a namespace host exactly there first (tests/support/newserver.py), so that everything
after provisioning is real: SSH, restic put on the server, the restore, the site's checks,
the DNS switch verified at PowerDNS. moto's fake public addresses are never contacted.

Scenarios: the whole migrate onto a provisioned server with --write-config (restic
uploaded, the config file keeps its comments); --dry-run and plain plans change nothing;
--to an existing endpoint; the provider refuses (bad credentials, quota); the server never
answers SSH (left running and named, then deleted with --destroy-on-failure); a failing
check of the new server leaves DNS alone; the primary is unreachable (--from-snapshot);
the migrate process SIGKILLed twice and run again (one server, resumed).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import TEST_AWS_ENV
from tests.support.cli import REPO, failover, failover_json
from tests.support.lab import HOSTNAME, Lab, running_lab
from tests.support.newserver import NewServer, pick_subnet

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

SITE = "shop"
TEMPLATE = "small"
OWN_COMMENT = "# my own note: keep me"
INLINE_COMMENT = "# the public name"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab()


@pytest.fixture(scope="module")
def moto() -> Iterator[Any]:
    from tests.integration.compute.moto_ec2 import Ec2MotoServer

    with Ec2MotoServer() as server:
        yield server


class World:
    """One scenario: the lab, moto (reset), a config and state of its own, new servers."""

    def __init__(self, lab: Lab, moto: Any, tmp: Path) -> None:
        self.lab, self.moto, self.tmp = lab, moto, tmp
        self.state = tmp / "state.db"
        self.config = tmp / "failover.yaml"
        self.hosts: list[NewServer] = []
        self.env = {**lab.env(), **TEST_AWS_ENV}

    # -- servers --

    def new_server(
        self, *, sshd: bool = True, web: bool = True, hide_restic: bool = False
    ) -> tuple[NewServer, str]:
        """A namespace host at the address the first server of a fresh moto subnet gets,
        and that subnet's id."""
        from tests.integration.compute.moto_ec2 import first_address, make_subnet

        for _attempt in range(5):
            cidr, ip = pick_subnet()
            short = uuid.uuid4().hex[:9]
            host = NewServer(f"new-{short}", self.lab.dir, ip, short=short)
            try:
                host.create()
            except RuntimeError:  # taken by a namespace created meanwhile: pick again
                continue
            break
        else:
            raise AssertionError("no free address for the new server")
        self.hosts.append(host)
        if sshd:
            host.start_sshd(self.lab.authorized_keys, self.lab.key, self.lab.known_hosts)
        if hide_restic:
            host.hide_restic()
            for name in ("restic", "apt-get"):  # nothing may run on this machine for real
                assert host.ssh(f"{name} --version", check=False).returncode != 0
        assert self.lab.s3 is not None
        host.start_forwarder(self.lab.s3.s3_port, self.lab.s3.s3_socket)
        if web:
            host.start_web(self.lab.cert)
        _vpc, subnet = make_subnet(self.moto, cidr)
        assert first_address(cidr) == host.ip
        return host, subnet

    def template(self, subnet: str, **overrides: Any) -> dict[str, Any]:
        from tests.integration.compute.moto_ec2 import Ec2Lab, some_image

        ec2 = Ec2Lab(self.moto, subnet, some_image(self.moto), "vpc", self.moto.port)
        template = ec2.template(
            ssh={
                "user": "root",
                "key": str(self.lab.key),
                "known_hosts": str(self.lab.known_hosts),
                "options": ["ConnectTimeout=3"],
            },
            ssh_timeout="20s",
            boot_timeout="30s",
            poll_interval="0.5s",
        )
        for key, value in overrides.items():
            if key == "args":
                template["args"] = {**template["args"], **value}
            else:
                template[key] = value
        return template

    def write_config(self, template: dict[str, Any] | None = None, **overrides: Any) -> Path:
        extra = {"compute_templates": {TEMPLATE: template}} if template else {}
        self.lab.write_config(self.config, state=str(self.state), **extra, **overrides)
        text = self.config.read_text()
        # The user's own comments, which --write-config must keep.
        text = text.replace("sites:\n", f"{OWN_COMMENT}\nsites:\n", 1)
        text = text.replace(
            f"hostname: {HOSTNAME}\n", f"hostname: {HOSTNAME}  {INLINE_COMMENT}\n", 1
        )
        self.config.write_text(text)
        return self.config

    # -- the tool --

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return failover(*args, config=self.config, env=self.env, timeout=timeout)

    def popen(self, *args: str) -> Migrating:
        return Migrating(self, args)

    # -- looking from outside --

    def dns(self) -> list[str]:
        return self.lab.dns_answer(HOSTNAME, "A")

    def active(self) -> str:
        if not self.state.exists():
            return "primary"
        with sqlite3.connect(self.state) as conn:
            row = conn.execute("SELECT active FROM site_state WHERE site=?", (SITE,)).fetchone()
        return str(row[0]) if row else "primary"

    def runs(self) -> list[dict[str, Any]]:
        if not self.state.exists():
            return []
        data: list[dict[str, Any]] = failover_json(
            "runs", "list", config=self.config, env=self.env
        )["runs"]
        return data

    def instances(self, states: tuple[str, ...] = ("pending", "running")) -> list[Any]:
        out = self.moto.ec2().describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": list(states)}]
        )
        return [i for r in out["Reservations"] for i in r["Instances"]]

    def close(self) -> None:
        for host in self.hosts:
            host.destroy()


class Migrating:
    """`failover migrate ...` as a background process whose stderr (progress) is read
    line by line, to kill it at a chosen point."""

    def __init__(self, world: World, args: tuple[str, ...]) -> None:
        env = {**os.environ, **world.env, "PYTHONPATH": str(REPO)}
        env.pop("FAILOVER_CONFIG", None)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "failover", "--config", str(world.config), "migrate", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def kill_at(self, fragment: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(fragment in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"never saw {fragment!r}:\n" + "\n".join(self.lines))
            time.sleep(0.01)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


@pytest.fixture
def world(lab: Lab, moto: Any, tmp_path: Path) -> Iterator[World]:
    moto.reset()
    assert lab.pdns is not None
    lab.pdns.set_records(HOSTNAME, "A", [lab.primary.ip], 60)  # as every scenario starts
    w = World(lab, moto, tmp_path)
    try:
        yield w
    finally:
        w.close()


def _out(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("failover: ")]
    assert len(lines) == 1, _out(proc)
    return lines[0]


# --- the whole migrate -------------------------------------------------------------------------


def test_migrate_onto_a_provisioned_server_end_to_end(world: World) -> None:
    lab = world.lab
    host, subnet = world.new_server(hide_restic=True)  # restic is uploaded by the tool
    world.write_config(world.template(subnet))

    proc = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes", "--write-config")
    assert proc.returncode == 0, _out(proc)

    # The plan came first: what is created, backed up, restored, switched.
    plan = proc.stdout
    assert plan.index("migrate of site shop: primary -> small") < plan.index("restored")
    assert "new server: failover-shop, size t3.micro" in plan
    assert "create server small from template small" in plan
    assert "back up primary" in plan
    assert "point the DNS records at small" in plan

    # moto's view: exactly one server, at the address the namespace host has.
    (instance,) = world.instances()
    assert instance["PrivateIpAddress"] == host.ip
    assert instance["SubnetId"] == subnet
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["failover:site"] == SITE and tags["failover:run"].startswith("shop-1-")

    # restic was put there (no package manager could run), the primary's data restored,
    # the after-restore commands and the checks passed, DNS points at the new server.
    assert "uploading" in proc.stderr and host.has_file("/usr/local/bin/restic")
    status, body = lab.https_get(host, "/")
    assert status == 200 and lab.marker in body
    assert (host.site_dir / "data" / "orders.csv").read_text().startswith("id,total")
    assert world.dns() == [host.ip]
    assert world.active() == TEMPLATE
    (run,) = world.runs()
    assert run["kind"] == "migrate" and run["status"] == "done"
    steps = {s["name"]: s for s in run["steps"]}
    assert [s["name"] for s in run["steps"]] == [
        "preflight",
        "final_backup",
        "provision",
        "wait_ssh",
        "ensure_restic",
        "restore",
        "after_restore",
        "recheck",
        "switch_dns",
        "activate",
        "verify_dns",
        "notify",
    ]
    assert all(s["status"] == "done" for s in run["steps"]), steps
    assert steps["provision"]["data"]["node_id"] == instance["InstanceId"]
    assert run["options"]["node_id"] == instance["InstanceId"]
    assert "snapshot" in steps["final_backup"]["detail"]
    try:
        lab.receiver.wait_for("migrate to small complete")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_out(proc)}") from None

    # The endpoint block was printed and added to the user's file, comments kept.
    assert f"address: {host.ip}" in proc.stdout
    text = world.config.read_text()
    assert OWN_COMMENT in text and INLINE_COMMENT in text
    assert text.startswith("# written by tests/support/lab.py")
    endpoint = yaml.safe_load(text)["sites"][SITE]["endpoints"][TEMPLATE]
    assert endpoint["address"] == host.ip
    assert endpoint["ssh"]["key"] == str(lab.key)
    assert instance["InstanceId"] in endpoint["description"]
    assert world.cli("validate").returncode == 0

    # The status shows the new server as active and watched (it is in the config now).
    status_json = failover_json("status", config=world.config, env=world.env)
    assert status_json["sites"][SITE]["active"] == TEMPLATE
    assert not any("not in the config" in w for w in status_json["sites"][SITE].get("warnings", []))


def test_dry_run_and_plain_plans_change_nothing(world: World) -> None:
    _host, subnet = world.new_server(sshd=False, web=False)
    world.write_config(world.template(subnet))
    before = world.config.read_text()

    dry = world.cli("migrate", SITE, "--provision", TEMPLATE, "--dry-run")
    assert dry.returncode == 0, _out(dry)
    assert "new server: failover-shop, size t3.micro" in dry.stdout
    assert "create server small from template small" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout

    plain = world.cli("migrate", SITE, "--provision", TEMPLATE, "--name", "aws")
    assert plain.returncode == 0, _out(plain)
    assert "primary -> aws" in plain.stdout
    assert "run again with --yes to apply" in plain.stdout

    as_json = failover_json(
        "migrate", SITE, "--provision", TEMPLATE, "--dry-run", config=world.config, env=world.env
    )
    assert as_json["applied"] is False
    assert as_json["plan"]["server"]["size"] == "t3.micro"
    assert as_json["plan"]["source_reachable"] is True
    assert [s["name"] for s in as_json["plan"]["steps"]][2:5] == [
        "provision",
        "wait_ssh",
        "ensure_restic",
    ]

    assert world.instances() == []
    assert world.runs() == []
    assert world.dns() == [world.lab.primary.ip]
    assert world.config.read_text() == before

    # Usage errors: exit 2, one line.
    for args in (
        ["migrate", SITE],
        ["migrate", SITE, "--to", "nowhere", "--yes"],
        ["migrate", SITE, "--provision", "huge"],
        ["migrate", SITE, "--to", "standby", "--provision", TEMPLATE],
    ):
        bad = world.cli(*args)
        assert bad.returncode == 2, _out(bad)
        _error_line(bad)
    assert world.instances() == []


def test_migrate_to_an_existing_endpoint(world: World) -> None:
    lab = world.lab
    world.write_config()
    before = world.config.read_text()
    proc = world.cli("migrate", SITE, "--to", "standby", "--yes", "--write-config")
    assert proc.returncode == 0, _out(proc)
    assert "create a server  (skipped: the target server exists already)" in proc.stdout
    assert "restic 0.14" in proc.stdout  # ensure_restic found it there
    status, body = lab.https_get(lab.standby, "/")
    assert status == 200 and lab.marker in body
    assert world.dns() == [lab.standby.ip]
    assert world.active() == "standby"
    assert "standby" in proc.stdout.splitlines()[-1]
    assert world.config.read_text() == before  # nothing new to add


# --- faults ------------------------------------------------------------------------------------


def test_bad_credentials_fail_at_provision_and_touch_nothing(world: World) -> None:
    from tests.integration.compute.moto_ec2 import Ec2MotoServer

    _host, subnet = world.new_server(sshd=False, web=False)
    with Ec2MotoServer(auth=True) as strict:
        world.env.update(FOT_BAD_KEY="AKIAWRONGWRONGWRONG1", FOT_BAD_SECRET="wrong-secret-xyz1")
        world.write_config(
            world.template(
                subnet, key="${FOT_BAD_KEY}", secret="${FOT_BAD_SECRET}", args={"port": strict.port}
            )
        )
        proc = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes")
        # moto's own view (its data dump needs no credentials): no server at all.
        with urllib.request.urlopen(strict.endpoint_url + "/moto-api/data.json", timeout=5) as resp:
            assert not json.load(resp).get("ec2", {}).get("Instance")
    assert proc.returncode == 1, _out(proc)
    line = _error_line(proc)
    assert "stopped at provision" in line and "authentication failed" in line, line
    assert "AKIAWRONGWRONGWRONG1" not in proc.stderr + proc.stdout
    assert "wrong-secret-xyz1" not in proc.stderr + proc.stdout
    assert "no server was created by this run" in proc.stdout
    assert "primary is still the active endpoint; DNS was not changed" in proc.stdout
    assert world.dns() == [world.lab.primary.ip]
    assert world.active() == "primary"


def test_quota_refusal_fails_at_provision_and_creates_nothing(world: World) -> None:
    from tests.integration.compute.moto_ec2 import RefusingProxy

    _host, subnet = world.new_server(sshd=False, web=False)
    refuse = {
        "RunInstances": (
            400,
            "InstanceLimitExceeded",
            "Your quota allows for 0 more running instance(s).",
        )
    }
    with RefusingProxy(world.moto.port, refuse) as proxy:
        world.write_config(world.template(subnet, args={"port": proxy.port}))
        proc = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes")
    assert proxy.refused == ["RunInstances"]
    assert proc.returncode == 1, _out(proc)
    line = _error_line(proc)
    assert "refused by the account's quota" in line and "InstanceLimitExceeded" in line, line
    assert world.instances() == []
    assert world.dns() == [world.lab.primary.ip]
    assert world.active() == "primary"
    (run,) = world.runs()
    assert run["status"] == "failed"  # resumable: the same command retries the provision


def test_server_that_never_gets_its_address_is_destroyed(world: World) -> None:
    """The server is created but never has a public address (the subnet gives none): the
    provision step fails after its id was journaled, and --destroy-on-failure deletes it."""
    _host, subnet = world.new_server(sshd=False, web=False)
    world.write_config(world.template(subnet, address="public", boot_timeout="2s"))
    proc = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes", "--destroy-on-failure")
    assert proc.returncode == 1, _out(proc)
    line = _error_line(proc)
    assert "stopped at provision" in line and "has no public address after 2s" in line, line
    assert world.instances() == []
    (gone,) = world.instances(("shutting-down", "terminated"))
    assert f"deleted server failover-shop ({gone['InstanceId']}" in proc.stdout
    (run,) = world.runs()
    assert run["status"] == "abandoned" and run["options"]["node_id"] == gone["InstanceId"]
    assert world.dns() == [world.lab.primary.ip]
    assert world.active() == "primary"


def test_server_never_reachable_over_ssh_is_named_then_destroyed(world: World) -> None:
    host, subnet = world.new_server(sshd=False, web=False)
    host.blackhole()  # the address exists, nothing answers: connections time out
    world.write_config(world.template(subnet, ssh_timeout="3s"))

    first = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes")
    assert first.returncode == 1, _out(first)
    line = _error_line(first)
    assert "stopped at wait_ssh" in line and "did not answer SSH within 3s" in line, line
    (instance,) = world.instances()
    node = instance["InstanceId"]
    assert node in first.stdout and host.ip in first.stdout
    assert "still running (and billed)" in first.stdout
    assert world.dns() == [world.lab.primary.ip]
    assert world.active() == "primary"

    again = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes", "--destroy-on-failure")
    assert again.returncode == 1, _out(again)
    assert again.stdout.startswith("resuming run #1")
    assert f"deleted server failover-shop ({node}" in again.stdout
    assert world.instances() == []
    (gone,) = world.instances(("shutting-down", "terminated"))
    assert gone["InstanceId"] == node
    (run,) = world.runs()
    assert run["status"] == "abandoned"
    assert world.dns() == [world.lab.primary.ip]
    assert world.active() == "primary"
    status, _body = world.lab.https_get(world.lab.primary, "/healthz")
    assert status == 200


def test_failing_check_of_the_new_server_leaves_dns_alone(world: World) -> None:
    host, subnet = world.new_server(web=False)  # SSH and restic fine, but no web server
    world.write_config(world.template(subnet), failover={"recheck_timeout": "2s"})
    proc = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes", "--destroy-on-failure")
    assert proc.returncode == 1, _out(proc)
    assert "stopped at recheck" in _error_line(proc)
    assert (host.site_dir / "index.html").exists()  # restored before the check failed
    assert world.dns() == [world.lab.primary.ip]
    assert world.active() == "primary"
    (run,) = world.runs()
    steps = {s["name"]: s["status"] for s in run["steps"]}
    assert steps["restore"] == "done" and steps["recheck"] == "failed"
    assert steps["switch_dns"] == "pending" and steps["activate"] == "pending"
    assert run["status"] == "abandoned"
    assert world.instances() == []
    assert "deleted server failover-shop" in proc.stdout


def test_unreachable_primary_needs_from_snapshot(world: World) -> None:
    lab = world.lab
    world.write_config()
    backup = world.cli("backup", "run", SITE)
    assert backup.returncode == 0, _out(backup)
    lab.primary.blackhole()
    try:
        refused = world.cli("migrate", SITE, "--to", "standby", "--yes")
        assert refused.returncode == 3, _out(refused)
        assert "no final backup: the newest snapshot" in refused.stdout
        assert "old" in refused.stdout and "--from-snapshot" in _error_line(refused)
        assert world.runs() == []

        proc = world.cli("migrate", SITE, "--to", "standby", "--yes", "--from-snapshot", "--json")
        assert proc.returncode == 0, _out(proc)
        result = json.loads(proc.stdout)
        assert result["applied"] is True and result["run"]["status"] == "done"
        assert result["plan"]["source_reachable"] is False
        assert result["plan"]["snapshot"]["age"] < 120
        final = next(s for s in result["run"]["steps"] if s["name"] == "final_backup")
        assert final["status"] == "skipped"
        assert "the source is unreachable" in final["detail"]
        status, body = lab.https_get(lab.standby, "/")
        assert status == 200 and lab.marker in body
        assert world.dns() == [lab.standby.ip]
        assert world.active() == "standby"
    finally:
        lab.primary.heal()


# --- a killed migrate resumes ------------------------------------------------------------------


def test_killed_twice_then_run_again_resumes_with_one_server(world: World) -> None:
    lab = world.lab
    host, subnet = world.new_server()
    world.write_config(world.template(subnet))

    # Killed right after the server was created (before or after its id was journaled).
    first = world.popen(SITE, "--provision", TEMPLATE, "--yes")
    first.kill_at("created server failover-shop")
    (instance,) = world.instances()
    node = instance["InstanceId"]
    (run,) = world.runs()
    assert run["status"] == "running" and run["options"]["idempotency_key"]

    # Killed again during the restore.
    second = world.popen(SITE, "--provision", TEMPLATE, "--yes")
    second.kill_at("[restore]")
    assert any("resuming with server" in line and node in line for line in second.lines), (
        second.lines
    )
    assert [i["InstanceId"] for i in world.instances()] == [node]
    assert world.dns() == [lab.primary.ip]

    # The third run completes what is left.
    proc = world.cli("migrate", SITE, "--provision", TEMPLATE, "--yes")
    assert proc.returncode == 0, _out(proc)
    assert proc.stdout.startswith("resuming run #1")
    assert "[provision]" not in proc.stderr  # done before: not repeated
    assert [i["InstanceId"] for i in world.instances()] == [node]
    assert world.dns() == [host.ip]
    assert world.active() == TEMPLATE
    status, body = lab.https_get(host, "/")
    assert status == 200 and lab.marker in body
    (run,) = world.runs()
    assert run["status"] == "done" and run["attempts"] == 3

    # Not written to the config yet: the status says so; `--write-config` alone adds it.
    assert TEMPLATE not in yaml.safe_load(world.config.read_text())["sites"][SITE]["endpoints"]
    status_json = failover_json("status", config=world.config, env=world.env)
    assert any("not in the config" in w for w in status_json["sites"][SITE]["warnings"])
    wrote = world.cli("migrate", SITE, "--write-config")
    assert wrote.returncode == 0, _out(wrote)
    endpoint = yaml.safe_load(world.config.read_text())["sites"][SITE]["endpoints"][TEMPLATE]
    assert endpoint["address"] == host.ip
    assert OWN_COMMENT in world.config.read_text()
