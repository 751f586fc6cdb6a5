"""The status page published to a real S3-compatible store (SeaweedFS) by `failover check`
and fetched back anonymously over plain HTTP, as the site's users would; rendered locally
with `failover status-page render`; a store that refuses the keys fails loudly and the
round still counts."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, write
from tests.support.cli import failover
from tests.support.storage_servers import SeaweedFS
from tests.support.web import LoopbackWeb

pytestmark = pytest.mark.integration

BUCKET = "status-pages"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    import boto3

    s3 = SeaweedFS(tmp_path_factory.mktemp("seaweed"), anonymous_read=True)
    with s3:
        client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name="us-east-1",
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
        )
        client.create_bucket(Bucket=BUCKET)
        yield s3


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def config(tmp: Path, web: LoopbackWeb, s3: SeaweedFS, secret: str) -> Path:
    (tmp / "s3-secret").write_text(secret + "\n")
    (tmp / "s3-secret").chmod(0o600)
    return write(
        tmp / "failover.yaml",
        f"""\
state: state.db
canaries:
  - {{type: tcp, host: 127.0.0.1, port: {web.port}, timeout: 1s}}
status_page:
  bucket: s3://{BUCKET}/pages/
  endpoint: {s3.endpoint}
  addressing: path
  access_key_id: "${{FOT_PAGE_KEY}}"
  secret_access_key: file:{tmp / "s3-secret"}
  title: Example Shop status
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {{address: 127.0.0.1}}
      standby: {{address: 127.0.0.2}}
    checks:
      - {{type: http, port: {web.port}, timeout: 1s}}
    policy: {{interval: 2s, down_after: 1s, up_after: 1s}}
""",
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[LoopbackWeb]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<title>Shop</title>")
    with LoopbackWeb(root, host="0.0.0.0", port=free_port()) as server:
        yield server


def test_check_publishes_the_page_and_anyone_can_read_it(
    tmp_path: Path, web: LoopbackWeb, store: SeaweedFS
) -> None:
    cfg = config(tmp_path, web, store, store.secret_key)
    env = {"FOT_PAGE_KEY": store.access_key}
    done = failover("check", config=cfg, env=env)
    assert done.returncode == 0, done.stderr
    assert "status page published (3 objects" in done.stderr, done.stderr

    base = f"{store.endpoint}/{BUCKET}/pages"
    status, ctype, body = get(f"{base}/shop/status.json")  # no credentials: as users fetch it
    assert status == 200 and ctype.startswith("application/json")
    data = json.loads(body)
    assert data["state"] == "operational" and data["headline"] == "All systems operational"
    assert data["title"] == "Example Shop status" and data["hostname"] == "shop.test"
    assert len(data["days"]) >= 90 and data["incident"] is None
    assert "127.0.0.1" not in body  # the public page names no addresses
    status, ctype, page = get(f"{base}/index.html")
    assert ctype.startswith("text/html") and "All systems operational" in page
    assert "<script" not in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", ""
    )  # nothing fetched from elsewhere

    # the next round changes nothing users would see: not published again
    again = failover("check", config=cfg, env=env)
    assert again.returncode == 0 and "status page published" not in again.stderr

    # the site's server goes: the next rounds declare it down and publish at once
    web.stop()
    for _ in range(3):
        failover("check", config=cfg, env=env)
    data = json.loads(get(f"{base}/shop/status.json")[2])
    assert data["state"] == "unknown"  # the canary went too: the monitor cannot judge

    out = tmp_path / "page"
    rendered = failover("status-page", "render", "--out", str(out), config=cfg, env=env)
    assert rendered.returncode == 0, rendered.stderr
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "index.html", "index.html", "status.json"]  # fmt: skip


def test_a_store_that_refuses_the_keys_fails_loudly(
    tmp_path: Path, web: LoopbackWeb, store: SeaweedFS
) -> None:
    cfg = config(tmp_path, web, store, "not-the-secret-key")
    env = {"FOT_PAGE_KEY": store.access_key}
    done = failover("check", config=cfg, env=env)
    assert done.returncode == 0  # the round counts; the page is a side show
    assert "status page not published: cannot upload s3://status-pages/pages/" in done.stderr
    assert "not-the-secret-key" not in done.stderr
    published = failover("status-page", "publish", config=cfg, env=env)
    assert published.returncode == 1
    assert "SignatureDoesNotMatch" in published.stderr or "Access" in published.stderr
