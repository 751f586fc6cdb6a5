"""The story shown where people look (issue #12), on real servers: the lab's primary falls
over and the agent fails over; meanwhile Prometheus scrapes the agent, and the status page
is published to an S3 store at "another provider" (a second SeaweedFS). Afterwards the
status page is opened from the bucket, with every server of the owner's cut off, and the
HTML report from a file, both in headless Chromium: they render without errors, the
report's chart shows the outage where it was, and screenshots are kept in tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, wait_for
from tests.support.browser import ARTIFACTS, dump_dom, screenshot
from tests.support.cli import failover, popen_failover
from tests.support.lab import Lab, running_lab
from tests.support.storage_servers import SeaweedFS

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

BUCKET = "status-example-test"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab()


@pytest.fixture(scope="module")
def page_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    import boto3

    with SeaweedFS(tmp_path_factory.mktemp("page-store"), anonymous_read=True) as s3:
        boto3.client(
            "s3", endpoint_url=s3.endpoint, region_name="us-east-1",
            aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key,
        ).create_bucket(Bucket=BUCKET)  # fmt: skip
        yield s3


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(http_get(f"http://127.0.0.1:{port}/metrics")):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def bands(dom: str) -> list[dict[str, float]]:
    """The outage bands drawn in each timeline chart, with the chart's own time span."""
    found = []
    for svg in re.finditer(r'<svg[^>]*class="timeline"[^>]*>.*?</svg>', dom, re.S):
        head = svg.group(0)
        span = re.search(r'data-start="([\d.]+)" data-end="([\d.]+)"', head)
        assert span
        for rect in re.finditer(r'<rect class="band outage"([^>]*)>', head):
            attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', rect.group(1)))
            found.append(
                {
                    "chart_start": float(span.group(1)),
                    "chart_end": float(span.group(2)),
                    "x": float(attrs["x"]),
                    "width": float(attrs["width"]),
                    "start": float(attrs["data-start"]),
                    "end": float(attrs["data-end"]),
                }
            )
    return found


def test_metrics_status_page_and_report_of_a_real_failover(
    lab: Lab, page_store: SeaweedFS, tmp_path: Path
) -> None:
    port = free_port()
    secret = tmp_path / "page-secret"
    secret.write_text(page_store.secret_key)
    secret.chmod(0o600)
    config = lab.write_config(
        tmp_path / "failover.yaml",
        state=str(tmp_path / "state.db"),
        metrics={"listen": f"127.0.0.1:{port}"},
        status_page={
            "bucket": f"s3://{BUCKET}/",
            "endpoint": page_store.endpoint,
            "addressing": "path",
            "access_key_id": "${FOT_PAGE_KEY}",
            "secret_access_key": f"file:{secret}",
            "title": "Example Shop status",
            "every": "30s",
        },
    )
    env = {**lab.env(), "FOT_PAGE_KEY": page_store.access_key}
    page_url = f"{page_store.endpoint}/{BUCKET}"
    assert failover("backup", "run", config=config, env=env).returncode == 0
    log = tmp_path / "agent.log"
    agent = popen_failover("agent", config=config, env=env, log=log)
    states: list[str] = []

    def page_state() -> str:
        state = str(json.loads(http_get(f"{page_url}/shop/status.json"))["state"])
        if not states or states[-1] != state:
            states.append(state)
        return state

    try:
        wait_for(lambda: page_state() == "operational", 60, "the page published, operational")
        cut = time.time()
        lab.primary.blackhole()

        def failed_over() -> bool:
            # every state the page shows on the way is recorded (asserted below); the page
            # may be operational again, served by the standby, within a second of the switch
            page_state()
            return lab.dns_answer() == [lab.standby.ip]

        wait_for(failed_over, 120, "the failover", interval=0.3)
        wait_for(
            lambda: page_state() == "operational"
            and json.loads(http_get(f"{page_url}/shop/status.json"))["past_incidents"],
            60, "the page to show the resolved incident", interval=0.3,
        )  # fmt: skip
        m = metrics(port)
        assert m[("failover_runs_total", (("kind", "failover"), ("outcome", "done")))] == 1
        assert m[("failover_endpoint_up", (("endpoint", "primary"), ("site", "shop")))] == 0
        assert m[("failover_active_endpoint_info", (("endpoint", "standby"), ("site", "shop")))]
        assert m[("failover_backup_newest_snapshot_age_seconds", (("site", "shop"),))] < 600
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    assert "outage" in states or "degraded" in states, states

    status = json.loads(http_get(f"{page_url}/shop/status.json"))
    assert status["headline"] == "All systems operational (served by the standby server)"
    past = status["past_incidents"][0]
    texts = [e["text"] for e in past["events"]]
    assert texts[0] == "Our monitoring sees the site failing"
    assert "Resolved: the standby server serves the site" in texts
    assert past["started"] >= cut - 2 and past["duration_seconds"] < 90
    assert lab.primary.ip not in json.dumps(status) and lab.standby.ip not in json.dumps(status)

    # The page needs none of the owner's servers: cut the standby off too, open it from the
    # bucket (its S3 endpoint is "another provider").
    lab.standby.blackhole()
    try:
        dom, errors = dump_dom(f"{page_url}/index.html")
        assert not errors, errors
        assert 'data-state="operational"' in dom and "served by the standby server" in dom
        assert 'class="days"' in dom and dom.count('class="day ') >= 90
        assert "Past incidents" in dom
        ARTIFACTS.mkdir(exist_ok=True)
        size = screenshot(f"{page_url}/index.html", ARTIFACTS / "status-page.png", 1000, 1200)
        assert size == (1000, 1200)
        phone = screenshot(f"{page_url}/index.html", ARTIFACTS / "status-page-phone.png", 390, 900)
        assert phone == (390, 900)
    finally:
        lab.standby.heal()

    # The HTML report, from a file, as it would be attached to a claim.
    report = tmp_path / "report.html"
    done = failover("report", "--format", "html", "--out", str(report), config=config, env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(failover("report", "--format", "json", config=config, env=env).stdout)
    assert data["target"] == 0.999
    incident = data["sites"]["shop"]["incidents"][0]
    dom, errors = dump_dom(report.as_uri())
    assert not errors, errors
    for fragment in (
        "Incident 1: primary down",
        "What the probes saw",
        "Uptime per month",
        "step switch_dns done",
        "every authoritative nameserver serves the standby",
    ):
        assert fragment in dom, fragment  # fmt: skip
    drawn = bands(dom)
    assert drawn, "no outage drawn"
    for band in drawn:  # each chart draws the outage where it was, from the first failure on
        assert abs(band["start"] - incident["first_failure"]) < 0.01
        assert band["end"] >= incident["declared_down"]
        span = band["chart_end"] - band["chart_start"]
        expected_x = 58 + (max(band["start"], band["chart_start"]) - band["chart_start"]) / span * (
            886 - 58
        )
        assert abs(band["x"] - expected_x) < 1.0, band
        assert band["width"] >= 1.0
    # the chart of the incident has the run's steps marked on it
    assert dom.count('<g class="mark"') >= 3 and "step switch_dns done" in dom
    shot = screenshot(report.as_uri(), ARTIFACTS / "report.png", 1100, 1600)
    assert shot == (1100, 1600)
    print(f"\nscreenshots: {ARTIFACTS}/status-page.png, status-page-phone.png, report.png")
