"""Prometheus metrics as Prometheus sees them: a running agent (a subprocess) scraped over
HTTP, and the textfile `failover check` writes under cron, both parsed with
prometheus_client's own parser. Real HTTPS servers on loopback with a test CA."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, wait_for, write
from tests.support.cli import failover, popen_failover
from tests.support.web import LoopbackWeb
from tests.support.webserver import TestCA, WebServer

pytestmark = pytest.mark.integration


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(metrics: dict[str, Any], name: str, **labels: str) -> float | None:
    for got, v in metrics.get(name, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return float(v)
    return None


class Servers:
    def __init__(self, tmp: Path) -> None:
        self.ca = TestCA(tmp / "ca")
        self.cert = self.ca.issue("shop.test", days=40)
        root = tmp / "www"
        root.mkdir()
        (root / "index.html").write_text("<title>Shop</title>")
        self.port = free_port()
        self.primary = WebServer(
            root, bind="127.0.0.1", port=self.port, cert=self.cert.cert, key=self.cert.key
        )
        self.standby = WebServer(
            root, bind="127.0.0.2", port=self.port, cert=self.cert.cert, key=self.cert.key
        )
        canary_root = tmp / "canary"
        canary_root.mkdir()
        self.canary = LoopbackWeb(canary_root)

    def env(self) -> dict[str, str]:
        return {"SSL_CERT_FILE": str(self.ca.cert_path), "SSL_CERT_DIR": "/nonexistent"}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    with s.canary, s.primary, s.standby:
        yield s


def config(tmp: Path, s: Servers, metrics: str) -> Path:
    return write(
        tmp / "failover.yaml",
        f"""\
state: state.db
canaries:
  - {{type: tcp, host: 127.0.0.1, port: {s.canary.port}, timeout: 1s}}
metrics: {metrics}
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {{address: 127.0.0.1}}
      standby: {{address: 127.0.0.2}}
    checks:
      - {{type: https, name: https, port: {s.port}, expect_body: Shop, timeout: 0.8s}}
      - {{type: tcp, port: {s.port}, name: port, timeout: 0.8s}}
    policy: {{interval: 1s, down_after: 2s, up_after: 1s}}
""",
    )


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return str(resp.read().decode())


def test_a_running_agent_serves_blackbox_style_metrics(tmp_path: Path, servers: Servers) -> None:
    port = free_port()
    cfg = config(tmp_path, servers, f'{{listen: "127.0.0.1:{port}"}}')
    agent = popen_failover("agent", config=cfg, env=servers.env(), log=tmp_path / "agent.log")
    try:
        seen: dict[str, Any] = {}

        def both_up() -> bool:
            try:
                seen.update(parse(scrape(port)))
            except OSError:
                return False
            return (
                value(seen, "failover_endpoint_up", site="shop", endpoint="primary") == 1
                and value(seen, "failover_endpoint_up", site="shop", endpoint="standby") == 1
            )

        wait_for(both_up, 30, "both endpoints up on /metrics", interval=0.2)
        m = seen
        https = {"site": "shop", "endpoint": "primary", "check": "https"}
        assert value(m, "failover_probe_success", **https) == 1
        assert value(m, "failover_probe_http_status_code", **https) == 200
        expiry = value(m, "failover_probe_ssl_earliest_cert_expiry", **https)
        assert expiry is not None and abs(expiry - servers.cert.not_after.timestamp()) < 2
        duration = value(m, "failover_probe_duration_seconds", **https)
        assert duration is not None and 0 < duration < 1
        tcp = {"site": "shop", "endpoint": "primary", "check": "port"}
        assert value(m, "failover_probe_success", **tcp) == 1
        assert value(m, "failover_probe_http_status_code", **tcp) is None  # not an HTTP check
        assert value(m, "failover_active_endpoint_info", site="shop", endpoint="primary") == 1
        assert value(m, "failover_active_endpoint_info", site="shop", endpoint="standby") is None
        assert value(m, "failover_agent_network_ok") == 1
        assert value(m, "failover_build_info", mode="agent") == 1
        state = {"site": "shop", "endpoint": "primary"}
        assert value(m, "failover_endpoint_health_state", state="up", **state) == 1
        assert value(m, "failover_endpoint_health_state", state="down", **state) == 0
        assert "failover_last_round_timestamp_seconds" in m

        # the primary's server stops: the probes fail at once, the verdict follows the policy
        servers.primary.stop()

        def primary_down() -> bool:
            seen.clear()
            seen.update(parse(scrape(port)))
            return value(seen, "failover_endpoint_up", **state) == 0

        wait_for(primary_down, 30, "the primary down on /metrics", interval=0.2)
        assert value(seen, "failover_probe_success", **https) == 0
        assert value(seen, "failover_endpoint_health_state", state="down", **state) == 1
        assert value(seen, "failover_endpoint_up", site="shop", endpoint="standby") == 1
        # no label takes its value from a result (no high cardinality)
        labels = {k for samples in seen.values() for got, _ in samples for k in got}
        assert labels <= {"site", "endpoint", "check", "state", "kind", "outcome", "version",
                          "python", "mode"}  # fmt: skip
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    assert agent.returncode == 0, (tmp_path / "agent.log").read_text()[-3000:]


def test_check_under_cron_writes_the_textfile_atomically(tmp_path: Path, servers: Servers) -> None:
    out_dir = tmp_path / "textfile_collector"
    out_dir.mkdir()
    cfg = config(tmp_path, servers, f"{{textfile: {out_dir / 'failover.prom'}}}")
    for _ in range(2):
        done = failover("check", config=cfg, env=servers.env())
        assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out_dir)) == ["failover.prom"]  # no temporary file left
    m = parse((out_dir / "failover.prom").read_text())
    https = {"site": "shop", "endpoint": "standby", "check": "https"}
    assert value(m, "failover_probe_success", **https) == 1
    assert value(m, "failover_probe_http_status_code", **https) == 200
    assert value(m, "failover_build_info", mode="check") == 1
    assert value(m, "failover_agent_network_ok") == 1
    assert value(m, "failover_active_endpoint_info", site="shop", endpoint="primary") == 1

    servers.standby.stop()
    assert failover("check", config=cfg, env=servers.env()).returncode == 0
    m = parse((out_dir / "failover.prom").read_text())
    assert value(m, "failover_probe_success", **https) == 0
    assert value(m, "failover_probe_http_status_code", **https) is None

    # a directory that does not exist: the round still counts, the error is logged
    bad = config(tmp_path, servers, f"{{textfile: {tmp_path / 'missing' / 'x.prom'}}}")
    done = failover("check", config=bad, env=servers.env())
    assert done.returncode == 0
    assert "metrics.textfile: cannot write" in done.stderr
