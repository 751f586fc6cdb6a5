"""`failover doctor` on the lab: everything passes on a healthy lab, and each thing a
failover needs, broken in turn (restic, the repository's password and reachability, an SSH
key's mode, a host key, the DNS provider's credentials, a record changed by hand, an
authoritative server, the canaries, the state, a notification target), is the one check
that fails, with a hint, exit code 1. The clock check is tested against local web servers
whose Date header is right and one hour off."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, write
from tests.support.cli import failover
from tests.support.lab import HOSTNAME, Lab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab()


def doctor(lab: Lab, config: Path, env: dict[str, str] | None = None) -> tuple[int, Any]:
    proc = failover(
        "doctor", "--json", "--timeout", "2s", config=config, env={**lab.env(), **(env or {})}
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def failed(report: Any) -> list[tuple[str, str]]:
    return [(c["check"], c["target"]) for c in report["checks"] if c["ok"] is False]


def test_a_healthy_lab_passes_every_check(lab: Lab) -> None:
    config = lab.write_config()
    code, report = doctor(lab, config)
    assert code == 0 and report["ok"], failed(report)
    assert report["version"] == 1
    checks = {c["check"] for c in report["checks"] if c["ok"]}
    assert checks >= {
        "state", "restic", "repository", "ssh-key", "host-key", "ssh", "dns", "records",
        "nameserver", "canary", "clock", "notify",
    }  # fmt: skip
    text = failover("doctor", config=config, env=lab.env())
    assert text.returncode == 0
    lines = text.stdout.strip().splitlines()
    assert lines[-1].startswith("all checks passed")
    assert all(line.startswith(("ok ", "skip ")) for line in lines[:-1]), lines


def test_each_thing_broken_in_turn_is_the_one_check_that_fails(lab: Lab, tmp_path: Path) -> None:
    bad_password = write(tmp_path / "wrong-password", "not-the-password\n")
    loose_key = tmp_path / "loose_key"
    loose_key.write_bytes(lab.key.read_bytes())
    loose_key.chmod(0o644)
    empty_known = write(tmp_path / "known_hosts", "")
    silent_port = free_port()
    ssh = lab.config_dict()["sites"]["shop"]["endpoints"]["primary"]["ssh"]
    broken: list[tuple[str, dict[str, Any], dict[str, str], set[tuple[str, str]]]] = [
        ("restic missing", {"backup": {"restic": "/nonexistent/restic"}}, {}, {("restic", "shop/primary")}),
        ("wrong password", {"backup": {"password": f"file:{bad_password}"}}, {}, {("repository", "shop")}),
        (
            "repository unreachable",
            {"backup": {"repository": f"s3:http://127.0.0.1:{silent_port}/nothing"}},
            {},
            {("repository", "shop")},
        ),
        (
            "key readable by others",
            {"endpoints": {"standby": {"ssh": {**ssh, "key": str(loose_key)}}}},
            {},
            {("ssh-key", "shop/standby"), ("ssh", "shop/standby")},
        ),
        (
            "host key unknown",
            {"endpoints": {"standby": {"ssh": {**ssh, "known_hosts": str(empty_known)}}}},
            {},
            {("host-key", "shop/standby"), ("ssh", "shop/standby")},
        ),
        ("DNS credentials", {}, {"PDNS_API_KEY": "wrong-key"}, {("dns", "shop (pdns, zone example.test)")}),
        (
            "nameserver unreachable",
            {"dns": {"nameservers": [lab.pdns.nameserver, f"127.0.0.1:{silent_port}"]}},
            {},
            {("nameserver", f"127.0.0.1:{silent_port}")},
        ),
        ("state not a file", {"state": str(tmp_path)}, {}, {("state", str(tmp_path))}),
        ("notification target", {"notify": [{"url": "nosuchservice://x"}]}, {}, {("notify", "notify[0]")}),
    ]  # fmt: skip
    for what, overrides, env, expected in broken:
        config = lab.write_config(tmp_path / "failover.yaml", **overrides)
        code, report = doctor(lab, config, env)
        assert code == 1, what
        assert set(failed(report)) == expected, (what, failed(report))
        for check in report["checks"]:
            if check["ok"] is False:
                assert check["hint"], (what, check)

    # A record changed by hand at the provider.
    config = lab.write_config(tmp_path / "failover.yaml")
    lab.pdns.set_records(HOSTNAME, "A", ["10.213.255.1"])
    try:
        code, report = doctor(lab, config)
        assert code == 1 and failed(report) == [("records", f"{HOSTNAME} A")]
    finally:
        lab.pdns.set_records(HOSTNAME, "A", [lab.primary.ip])

    # The agent's own network: the canary stops answering.
    lab.cut_canary()
    try:
        code, report = doctor(lab, config)
        assert code == 1
        assert {c for c, _ in failed(report)} == {"canary"}
    finally:
        lab.heal_canary()
    assert doctor(lab, config)[0] == 0


class _DateServer:
    """Answers every request with 200 and a Date header `skew` seconds off."""

    def __init__(self, skew: float) -> None:
        skew_ = skew

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.send_response_only(200)
                self.send_header("Date", formatdate(time.time() + skew_, usegmt=True))
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def __enter__(self) -> _DateServer:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("skew", "ok"), [(0.0, True), (-3600.0, False)])
def test_the_clock_is_compared_with_the_endpoints_date_header(
    tmp_path: Path, skew: float, ok: bool
) -> None:
    with _DateServer(skew) as server:
        config = write(
            tmp_path / "failover.yaml",
            f"""\
state: state.db
sites:
  s:
    hostname: s.test
    endpoints: {{a: {{address: 127.0.0.1}}}}
    checks: [{{type: http, port: {server.port}, timeout: 1s}}]
""",
        )
        proc = failover(
            "doctor", "--json", config=config, env={"HOME": os.environ.get("HOME", "/root")}
        )
    report = json.loads(proc.stdout)
    clock = next(c for c in report["checks"] if c["check"] == "clock")
    assert clock["ok"] is ok, clock
    if not ok:
        found = re.search(r"off by ([+-]\d+\.\d)s", clock["detail"])
        assert found and abs(float(found.group(1)) - 3600) < 2 and clock["hint"], clock
    # no notification target is the other failure of this config
    assert {c["check"] for c in report["checks"] if c["ok"] is False} == (
        {"notify"} if ok else {"notify", "clock"}
    )
    assert proc.returncode == 1
