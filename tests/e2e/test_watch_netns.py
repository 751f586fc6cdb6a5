"""The watch on real things (issue #2): `failover agent` as a subprocess watching two
namespace "VPSes" that serve HTTPS with a certificate for the site's name (verified against
the lab's CA through SSL_CERT_FILE) and SSH on port 22, with a canary in a third namespace,
notifications to a local json:// receiver. Real outages, one after the other: packets
dropped (timeouts), TCP resets (fast failure), the web server stopped, and finally the
agent's own network cut (canary and primary at once: nothing may be declared down)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_for
from tests.support.cli import failover, failover_json, popen_failover
from tests.support.lab import Lab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

DOWN = "primary is DOWN"
RECOVERED = "primary recovered"


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from running_lab(dns=False, storage=False)


class Watch:
    def __init__(self, lab: Lab, config: Path, log: Path) -> None:
        self.lab, self.config, self.log = lab, config, log

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = failover_json("status", config=self.config, env=self.lab.env())
        return data

    def endpoint(self, name: str) -> dict[str, Any]:
        ep: dict[str, Any] = self.status()["sites"]["shop"]["endpoints"][name]
        return ep

    def wait_health(self, name: str, health: str, timeout: float = 15) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.update(self.endpoint(name))
            return bool(seen["health"] == health)

        try:
            wait_for(reached, timeout, f"{name} to be {health}", interval=0.3)
        except TimeoutError:
            raise AssertionError(
                f"{name} is {seen.get('health')}, not {health}: {seen}\n"
                f"agent log:\n{self.log.read_text()[-3000:]}"
            ) from None
        return seen

    def count(self, fragment: str) -> int:
        return sum(fragment in t for t in self.lab.receiver.titles())

    def wait_count(self, fragment: str, n: int, timeout: float = 15) -> None:
        try:
            wait_for(
                lambda: self.count(fragment) >= n,
                timeout,
                f"{n} notification(s) {fragment!r}",
                interval=0.1,
            )
        except TimeoutError:
            raise AssertionError(
                f"expected {n} x {fragment!r}; got {self.lab.receiver.titles()}"
                f"\nagent log:\n{self.log.read_text()[-3000:]}"
            ) from None


def test_agent_watches_namespace_hosts_through_real_outages(lab: Lab, tmp_path: Path) -> None:
    config = lab.write_config(
        tmp_path / "failover.yaml",
        state=str(tmp_path / "state.db"),
        policy={"interval": "1s", "down_after": "2s", "up_after": "2s", "auto_failover": False},
    )
    assert failover("validate", config=config, env=lab.env()).returncode == 0
    log = tmp_path / "agent.log"
    agent = popen_failover("agent", config=config, env=lab.env(), log=log)
    watch = Watch(lab, config, log)
    try:
        # Both come up: HTTPS verified against the site's name, and SSH's port.
        for name in ("primary", "standby"):
            ep = watch.wait_health(name, "up")
            assert all(c["ok"] for c in ep["checks"]), ep
            assert any(c["check"] == "https" and "200" in c["detail"] for c in ep["checks"]), ep

        # 1. Packets dropped: the probes time out; the standby stays up.
        lab.primary.blackhole()
        watch.wait_count(DOWN, 1)
        down = next(m for m in lab.receiver.messages if DOWN in m.get("title", ""))
        assert lab.primary.ip in down["message"] and "timeout" in down["message"]
        ep = watch.wait_health("primary", "down", timeout=5)
        assert all(not c["ok"] and "timeout" in c["detail"] for c in ep["checks"]), ep
        assert watch.endpoint("standby")["health"] == "up"
        lab.primary.heal()
        watch.wait_count(RECOVERED, 1)
        watch.wait_health("primary", "up", timeout=5)

        # 2. TCP reset on 443: fast failure (no waiting for a timeout), SSH still answers.
        lab.primary.reset(443)
        watch.wait_count(DOWN, 2)
        ep = watch.wait_health("primary", "down", timeout=5)
        https = next(c for c in ep["checks"] if c["check"] == "https")
        tcp = next(c for c in ep["checks"] if c["check"] != "https")
        assert not https["ok"] and "timeout" not in https["detail"], https
        assert tcp["ok"], tcp
        lab.primary.heal()
        watch.wait_count(RECOVERED, 2)

        # 3. The web server stopped: connection refused.
        lab.primary.stop_web()
        watch.wait_count(DOWN, 3)
        ep = watch.wait_health("primary", "down", timeout=5)
        https = next(c for c in ep["checks"] if c["check"] == "https")
        assert "refused" in https["detail"], https
        lab.primary.start_web()
        watch.wait_count(RECOVERED, 3)
        watch.wait_health("primary", "up", timeout=5)
        assert watch.count(DOWN) == 3

        # 4. The agent's own network goes down (canary first, then the primary): the agent
        # says it is offline and declares nothing down, however long it lasts.
        lab.cut_canary()
        lab.primary.blackhole()
        watch.wait_count("agent is offline", 1)
        time.sleep(2 + 2 * 1 + 1)  # down_after + two intervals + slack
        titles = lab.receiver.titles()
        assert sum("DOWN" in t for t in titles) == 3, titles  # no new DOWN for anything
        status = watch.status()
        assert any("own network" in w for w in status["warnings"]), status["warnings"]
        for name in ("primary", "standby"):
            assert status["sites"]["shop"]["endpoints"][name]["health"] not in ("down", "suspect")
        lab.heal_canary()
        lab.primary.heal()
        watch.wait_count("online again", 1)
        watch.wait_health("primary", "up", timeout=8)
        assert watch.endpoint("standby")["health"] == "up"
        assert sum("DOWN" in t for t in lab.receiver.titles()) == 3
    finally:
        lab.heal_canary()
        lab.primary.heal()
        if agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(timeout=15)
            except Exception:
                agent.kill()
                agent.wait(timeout=5)
    assert agent.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
