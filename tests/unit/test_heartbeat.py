"""How a heartbeat signal becomes a request for each kind of target (watch/heartbeat.py),
and the bound on its timeout."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from failover.config.load import parse_config
from failover.watch.heartbeat import request_for, timeout_for


def test_plain_only_says_success() -> None:
    r = request_for("plain", "https://hc.test/p/abc", "success")
    assert r is not None and (r.method, r.url) == ("GET", "https://hc.test/p/abc")
    assert request_for("plain", "https://hc.test/p/abc", "fail") is None
    assert request_for("plain", "https://hc.test/p/abc", "start") is None


def test_healthchecks_start_fail_and_exit_status() -> None:
    base = "https://hc-ping.test/5f1c/"
    assert request_for("healthchecks", base, "start").url == "https://hc-ping.test/5f1c/start"  # type: ignore[union-attr]
    assert request_for("healthchecks", base, "success").url == "https://hc-ping.test/5f1c"  # type: ignore[union-attr]
    fail = request_for("healthchecks", base, "fail", "canaries failed")
    assert fail is not None and fail.url.endswith("/5f1c/fail") and fail.body == b"canaries failed"
    assert request_for("healthchecks", base, 3).url.endswith("/5f1c/3")  # type: ignore[union-attr]
    assert request_for("healthchecks", base, 0).url.endswith("/5f1c/0")  # type: ignore[union-attr]


def test_uptime_kuma_push_status_msg_and_ping() -> None:
    url = "https://kuma.test/api/push/TOKEN?status=up&msg=OK&ping="
    down = request_for("uptime-kuma", url, "fail", "network down", ms=12.4)
    assert down is not None and down.method == "GET"
    parts = urlsplit(down.url)
    assert parts.path == "/api/push/TOKEN"
    assert parse_qs(parts.query) == {"status": ["down"], "msg": ["network down"], "ping": ["12"]}
    up = request_for("uptime-kuma", url, 0, "backup ok")
    assert up is not None and parse_qs(urlsplit(up.url).query)["status"] == ["up"]
    assert request_for("uptime-kuma", url, "start") is None


def test_the_timeout_is_bounded_by_the_shortest_interval() -> None:
    loaded = parse_config(
        """\
heartbeat: {url: "https://hc.test/x", timeout: 1h, every: 1m}
sites:
  s:
    hostname: s.test
    endpoints: {a: {address: 127.0.0.1}}
    checks: [{type: tcp, port: 1, timeout: 1s}]
    policy: {interval: 5s}
""",
        "f.yaml",
    )
    beat = loaded.config.heartbeat
    assert beat is not None and timeout_for(loaded.config, beat) == 5.0
