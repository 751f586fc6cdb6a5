"""The public status page: gathered from the state, rendered as static files (page.py,
pure), published to an S3-compatible bucket at another provider.

The agent's round hook publishes when something users would notice changed (health of
an active endpoint, the active endpoint, a run's steps) and at least every
`status_page.every`, through the hook context's spawn, so that an upload never holds up
a round. `failover status-page render --out DIR` writes the same files locally.

Objects: PREFIX/index.html (the one site's page, or an overview of several),
PREFIX/SITE/index.html and PREFIX/SITE/status.json.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.logs import get_logger
from failover.show.page import public_json, render_index, render_site, site_model
from failover.show.uptime import watched_intervals

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.show import StatusPageConfig
    from failover.hooks import HookContext
    from failover.store import Store

log = get_logger("status-page")

CHART_HOURS = 24
_PUBLISHED = "status_page_published"  # meta: when the page was last published
_DIGEST = "status_page_digest"  # meta: the change key it was published with
_FAILED = "status_page_failed"  # meta: when the last attempt failed
RETRY_AFTER = 60.0


def page_sites(loaded: LoadedConfig) -> list[str]:
    cfg = loaded.config.status_page
    assert cfg is not None
    return list(cfg.sites or loaded.config.sites)


def models(loaded: LoadedConfig, store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """The page's model of each site on it."""
    from failover.runs import journal
    from failover.show.report import build_report, timeline_data

    cfg = loaded.config.status_page
    assert cfg is not None
    now = now or time.time()
    since = now - cfg.days * 86400
    report = build_report(loaded, store, None, since, 0.999, now, charts=False)
    rounds = store.round_network(since)
    net = store.get_meta("network_ok")
    has_runs = journal.has_runs(store)
    out = []
    for name in page_sites(loaded):
        site = loaded.config.sites[name]
        data = report["sites"][name]
        active = store.active_or(name, site.initial_active)
        health = store.health_state(name, active) or {}
        runs = journal.runs(store, name) if has_runs else []
        switches = sorted((_switched_at(r), r.source, r.target) for r in runs if r.status == "done")
        first_round = rounds[0][0] if rounds else now
        chart_start = max(now - CHART_HOURS * 3600, first_round)
        timelines = {
            ep: _public_timeline(
                timeline_data(store, name, ep, site.checks[0].label, chart_start, now, [])
            )
            for ep in site.endpoints
        }
        out.append(
            site_model(
                site=name,
                hostname=site.hostname,
                title=cfg.title,
                now=now,
                every=cfg.every,
                days=cfg.days,
                active=active,
                active_health=str(health.get("status", "unknown")),
                network_ok=None if net is None else net == "1",
                open_run=any(r.status in ("running", "failed") for r in runs),
                incidents=data["incidents"],
                switches=switches,
                watched=watched_intervals(rounds, site.policy.interval),
                timelines=timelines,
            )
        )
    return out


def _switched_at(run: Any) -> float:
    done = [s["finished"] for s in run.steps if s["name"] == "activate" and s["finished"]]
    return float(done[0] if done else run.finished or run.created)


def _public_timeline(data: dict[str, Any]) -> dict[str, Any]:
    # The page is public: the chart shows what users saw, without internal marks.
    return {**data, "bands": [], "marks": []}


def render_files(
    loaded: LoadedConfig, store: Store, now: float | None = None
) -> dict[str, tuple[bytes, str]]:
    """key (relative to the prefix) -> (content, content type)."""
    cfg = loaded.config.status_page
    assert cfg is not None
    now = now or time.time()
    files: dict[str, tuple[bytes, str]] = {}
    ms = models(loaded, store, now)
    for m in ms:
        files[f"{m['site']}/index.html"] = (render_site(m).encode(), "text/html; charset=utf-8")
        files[f"{m['site']}/status.json"] = (
            (json.dumps(public_json(m), indent=2) + "\n").encode(),
            "application/json",
        )
    if len(ms) == 1:
        index = render_site(ms[0], base=f"{ms[0]['site']}/")
    else:
        index = render_index(cfg.title, ms, now)
    files["index.html"] = (index.encode(), "text/html; charset=utf-8")
    return files


def write_local(loaded: LoadedConfig, store: Store, out: Path) -> list[Path]:
    written = []
    for key, (body, _ctype) in render_files(loaded, store).items():
        path = out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        written.append(path)
    return written


def publish(loaded: LoadedConfig, store: Store, digest: str | None = None) -> list[str]:
    """Render and upload every object; record when (and with which change key)."""
    from providers.objectstore import S3Bucket

    cfg = loaded.config.status_page
    assert cfg is not None
    bucket = S3Bucket(cfg)
    keys = []
    files = render_files(loaded, store)
    # the site pages first, the index last: a reader never follows a link to a missing page
    for key in sorted(files, key=lambda k: (k == "index.html", k)):
        body, ctype = files[key]
        bucket.put(cfg.prefix + key, body, ctype, "public, max-age=60")
        keys.append(cfg.prefix + key)
    store.set_meta(_PUBLISHED, str(time.time()))
    store.set_meta(_DIGEST, digest or change_key(loaded, store))
    store.delete_meta(_FAILED)
    return keys


def change_key(loaded: LoadedConfig, store: Store) -> str:
    """Cheap to compute every round: what users would notice (health of each endpoint,
    the active one, the agent's network, open runs and their steps)."""
    from failover.runs import journal

    has_runs = journal.has_runs(store)
    parts: list[Any] = [store.get_meta("network_ok")]
    for name in page_sites(loaded):
        site = loaded.config.sites[name]
        parts.append(store.active_or(name, site.initial_active))
        for ep in site.endpoints:
            parts.append((store.health_state(name, ep) or {}).get("status"))
        run = journal.open_run(store, name) if has_runs else None
        if run is not None:
            parts.append([run.id, run.status] + [s["status"] for s in run.steps])
        last = journal.last_done_run(store, name) if has_runs else None
        parts.append(None if last is None else last.id)
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def due(
    now: float,
    digest: str,
    last_digest: str | None,
    last_published: float | None,
    last_failed: float | None,
    every: float,
) -> bool:
    """Publish now? On a change, when `every` has passed, never twice a minute after a
    failure."""
    if last_failed is not None and now - last_failed < RETRY_AFTER:
        return False
    if last_published is None or digest != last_digest:
        return True
    return now - last_published >= every


def status_page_hook(ctx: HookContext) -> None:
    cfg: StatusPageConfig | None = ctx.loaded.config.status_page
    if cfg is None:
        return
    store = ctx.store
    digest = change_key(ctx.loaded, store)

    def meta_float(key: str) -> float | None:
        value = store.get_meta(key)
        return None if value is None else float(value)

    if not due(
        time.time(),
        digest,
        store.get_meta(_DIGEST),
        meta_float(_PUBLISHED),
        meta_float(_FAILED),
        cfg.every,
    ):
        return
    loaded = ctx.loaded

    def work(own: Store) -> None:
        try:
            keys = publish(loaded, own, digest)
        except Exception as exc:
            own.set_meta(_FAILED, str(time.time()))
            log.error("status page not published: %s", exc)
            return
        log.info("status page published (%d objects to s3://%s/%s)", len(keys),
                 cfg.bucket_name, cfg.prefix)  # fmt: skip

    ctx.spawn("status-page", work, short=True)  # an upload with its own timeouts
