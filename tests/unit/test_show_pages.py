"""The status page's model and the charts, as data: what users are told, what is drawn."""

from __future__ import annotations

import re

from failover.show.charts import Band, Bucket, Mark, Timeline, timeline_svg
from failover.show.page import active_at, public_events, render_site, site_model, user_downtime
from failover.show.uptime import Interval

SWITCH = [(1000.0, "primary", "standby")]  # the standby became active at t=1000


def incident(endpoint: str, first: float, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {"endpoint": endpoint, "first_failure": first,
                               "declared_down": first + 3, "recovered": None, "ongoing": True,
                               "runs": []}  # fmt: skip
    base.update(kw)
    return base


def test_users_saw_only_outages_of_the_endpoint_serving_them() -> None:
    assert active_at(500, SWITCH, "standby") == "primary"
    assert active_at(1500, SWITCH, "standby") == "standby"
    incidents = [
        incident("primary", 900, standby_serving=1000),  # users saw 100 s
        incident("standby", 200, recovered=300, ongoing=False),  # nobody was sent there
        incident("primary", 1200),  # the old primary after the switch: nobody sees it
    ]
    assert user_downtime(incidents, SWITCH, "standby", now=2000) == [Interval(900, 1000)]


def test_the_public_timeline_names_no_internals() -> None:
    run = {"created": 905, "steps": [
        {"name": "restore", "status": "done", "finished": 950,
         "detail": "restored snapshot fd56ac4c onto standby:/"},
        {"name": "switch_dns", "status": "done", "finished": 990,
         "detail": "shop.example.test A -> 203.0.113.7"},
    ]}  # fmt: skip
    events = public_events(incident("primary", 900, runs=[run], standby_serving=1000))
    text = " ".join(e["text"] for e in events)
    assert "203.0.113.7" not in text and "fd56ac4c" not in text
    assert [e["text"] for e in events][-1] == "Resolved: the standby server serves the site"


def test_the_page_says_what_is_going_on() -> None:
    kw: dict[str, object] = {"site": "shop", "hostname": "shop.example.com", "title": "Shop status",
          "now": 2000.0, "every": 300.0, "days": 90, "switches": [],
          "watched": [Interval(0, 2000)], "network_ok": True}  # fmt: skip
    down = site_model(active="primary", active_health="down", open_run=True,
                      incidents=[incident("primary", 1900)], **kw)  # type: ignore[arg-type]  # fmt: skip
    assert down["state"] == "outage" and "moving it to the standby" in down["headline"]
    assert down["incident"]["events"][0]["text"] == "Our monitoring sees the site failing"
    html = render_site(down)
    assert 'data-state="outage"' in html and "Incident in progress" in html
    assert "<script" not in html and 'name="viewport"' in html
    blind = site_model(active="primary", active_health="up", open_run=False, incidents=[],
                       **{**kw, "network_ok": False})  # type: ignore[arg-type]  # fmt: skip
    assert blind["state"] == "unknown"  # the monitor's own network is down: no claim


def test_the_outage_band_sits_where_the_outage_was() -> None:
    t = Timeline("t", 0.0, 1000.0, [Bucket(0, 500, 10, 0), Bucket(500, 1000, 10, 10)],
                 [Band(500.0, 750.0, "outage", "outage <b>")], [Mark(600.0, "declared & down")])  # fmt: skip
    svg = timeline_svg(t)
    band = re.search(r'<rect class="band outage" x="([\d.]+)"[^>]*width="([\d.]+)"', svg)
    assert band is not None
    left, right = 58.0, 886.0
    assert abs(float(band.group(1)) - (left + 0.5 * (right - left))) < 0.01
    assert abs(float(band.group(2)) - 0.25 * (right - left)) < 0.01
    assert "declared &amp; down" in svg and "<b>" not in svg  # escaped
    assert 'class="avail ok"' in svg and 'class="avail fail"' in svg
