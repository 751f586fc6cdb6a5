"""Prometheus metrics: `/metrics` served by the agent (`metrics.listen`), and the same
metrics written atomically to a textfile after each round (`metrics.textfile`, for
node_exporter's textfile collector: the way to get them from `failover check` under cron).

What the metrics say comes from the state (health, active endpoints, backups, runs, the
agent's network) read at scrape time, plus the last round's probe results, kept in memory
by the round hook (status codes and certificate expiry are not in the state). The
families themselves are pure data (families.py); prometheus_client, imported only here and
only when metrics are configured, serves and writes them.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError
from failover.logs import get_logger
from failover.show.families import BackupSample, Family, ProbeSample, Snapshot, families

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.hooks import HookContext, RoundResult
    from failover.store import Store

log = get_logger("metrics")


class LatestProbes:
    """The newest probe result per (site, endpoint, check), from the rounds' results."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probes: dict[tuple[str, str, str], ProbeSample] = {}

    def update(self, result: RoundResult) -> None:
        with self._lock:
            for o in result.outcomes:
                for r in o.results:
                    self._probes[(o.site, o.endpoint, r.check)] = ProbeSample(
                        o.site,
                        o.endpoint,
                        r.check,
                        r.ok,
                        None if r.latency_ms is None else r.latency_ms / 1000.0,
                        r.http_status,
                        r.cert_expiry,
                    )

    def get(self) -> dict[tuple[str, str, str], ProbeSample]:
        with self._lock:
            return dict(self._probes)


LATEST = LatestProbes()  # one per process: the agent's rounds feed it, scrapes read it


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("failover")
    except PackageNotFoundError:
        return "unknown"


def snapshot(
    loaded: LoadedConfig, store: Store, latest: LatestProbes = LATEST, mode: str = "agent"
) -> Snapshot:
    """What the metrics show now, for the sites and endpoints of the config."""
    config = loaded.config
    now = time.time()
    wanted = {(s, e) for s, site in config.sites.items() for e in site.endpoints}
    checks = {
        (s, e, c.label)
        for s, site in config.sites.items()
        for e in site.endpoints
        for c in site.checks
    }
    probes = {k: v for k, v in latest.get().items() if k in checks}
    for site, endpoint in sorted(wanted):  # before the first round of this process
        if any(k[:2] == (site, endpoint) for k in probes):
            continue
        for row in store.last_probes(site, endpoint):
            key = (site, endpoint, row["check_name"])
            if key in checks:
                latency = row["latency_ms"]
                probes[key] = ProbeSample(
                    site, endpoint, row["check_name"], bool(row["ok"]),
                    None if latency is None else latency / 1000.0,
                )  # fmt: skip
    health = {
        key: str(state.get("status", "unknown"))
        for key, state in store.all_health().items()
        if key in wanted
    }
    active = {
        name: store.active_or(name, site.initial_active) for name, site in config.sites.items()
    }
    last_round = store.last_round()
    net = store.get_meta("network_ok")
    return Snapshot(
        now=now,
        version=_version(),
        python=platform.python_version(),
        probes=list(probes.values()),
        health=health,
        active=active,
        backups=_backups(loaded, store),
        runs=_runs(store),
        network_ok=None if net is None else net == "1",
        last_round=None if last_round is None else float(last_round["ts"]),
        mode=mode,
    )


def _backups(loaded: LoadedConfig, store: Store) -> list[BackupSample]:
    sites = [n for n, s in loaded.config.sites.items() if s.backup is not None]
    if not sites:
        return []
    from failover.backup import journal

    if not journal.has_state(store):
        return []
    out = []
    for site in sites:
        state = journal.load_state(store, site)
        out.append(BackupSample(site, state.get("last_success"), state.get("newest_snapshot")))
    return out


def _runs(store: Store) -> list[tuple[str, str, int]]:
    from failover.runs import journal

    if not journal.has_runs(store):
        return []
    return [(r.kind, r.status, r.attempts) for r in journal.runs(store)]


def to_prometheus(fams: Iterable[Family]) -> Iterator[Any]:
    """prometheus_client's metric families for ours."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

    for fam in fams:
        if fam.kind == "info":
            info = InfoMetricFamily(fam.name, fam.help, labels=())
            for s in fam.samples:
                info.add_metric([], dict(s.labels))
            yield info
            continue
        cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
        metric = cls(fam.name, fam.help, labels=list(fam.labels))
        for s in fam.samples:
            metric.add_metric([s.labels[k] for k in fam.labels], s.value)
        yield metric


class _Collector:
    """Reads the state at every scrape, through a read-only connection of its own."""

    def __init__(self, loaded: LoadedConfig, latest: LatestProbes) -> None:
        self.loaded = loaded
        self.latest = latest

    def collect(self) -> Iterator[Any]:
        from failover.store import Store

        try:
            with Store.open(self.loaded.state_path, readonly=True) as store:
                snap = snapshot(self.loaded, store, self.latest)
        except Exception as exc:  # a scrape never kills the agent
            log.error("metrics: cannot read the state: %s", exc)
            return
        yield from to_prometheus(families(snap))


def registry_for(collector: Any) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


@contextlib.contextmanager
def serve_metrics(loaded: LoadedConfig, latest: LatestProbes = LATEST) -> Iterator[None]:
    """Serve /metrics on `metrics.listen` while the block runs (nothing when unset)."""
    cfg = loaded.config.metrics
    address = cfg.address if cfg is not None else None
    if address is None:
        yield
        return
    from prometheus_client import start_http_server

    host, port = address
    try:
        server, thread = start_http_server(
            port, addr=host or "0.0.0.0", registry=registry_for(_Collector(loaded, latest))
        )
    except OSError as exc:
        raise FailoverError(
            f"metrics.listen: cannot listen on {cfg.listen if cfg else ''}: {exc.strerror or exc}",
            hint="another process (a second agent?) uses the port, or the address is not "
            "this machine's",
        ) from None
    log.info("serving metrics on http://%s:%d/metrics", host or "0.0.0.0", port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def textfile_path(loaded: LoadedConfig) -> Path | None:
    cfg = loaded.config.metrics
    if cfg is None or cfg.textfile is None:
        return None
    path = Path(cfg.textfile).expanduser()
    return path if path.is_absolute() else loaded.path.parent / path


def write_textfile(
    loaded: LoadedConfig, store: Store, latest: LatestProbes = LATEST, mode: str = "agent"
) -> Path | None:
    """The metrics in the textfile, replaced atomically (a reader never sees half a file)."""
    path = textfile_path(loaded)
    if path is None:
        return None
    from prometheus_client import write_to_textfile

    snap = snapshot(loaded, store, latest, mode)

    class _Fixed:
        def collect(self) -> Iterator[Any]:
            yield from to_prometheus(families(snap))

    try:
        write_to_textfile(str(path), registry_for(_Fixed()))
    except OSError as exc:
        raise FailoverError(
            f"metrics.textfile: cannot write {path}: {exc.strerror or exc}"
        ) from None
    return path


def metrics_hook(ctx: HookContext) -> None:
    """After each round: keep its probe results for /metrics; write the textfile."""
    if ctx.result is not None:
        LATEST.update(ctx.result)
    if textfile_path(ctx.loaded) is not None:
        write_textfile(ctx.loaded, ctx.store, LATEST, "agent" if ctx.daemon else "check")
