"""What every stage that runs after a probe round gets, and what a round produced. A leaf:
the watch loop, the runs, the backups and the DNS refresh import it; it imports none of
them (their types only for the type checker)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.notify import Notifier
    from failover.store import Store
    from failover.watch.health import Change, HealthState
    from failover.watch.probes.result import ProbeResult


@dataclass
class EndpointOutcome:
    site: str
    endpoint: str
    results: list[ProbeResult]
    observation: bool | None  # None: inconclusive round
    before: HealthState
    after: HealthState
    change: Change | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def failure_detail(self) -> str:
        failed = [f"{r.check}: {r.detail}" for r in self.results if not r.ok]
        return "; ".join(failed) or "all checks passed"


@dataclass
class RoundResult:
    ts: float
    duration: float
    network_ok: bool
    canaries: list[ProbeResult]
    outcomes: list[EndpointOutcome] = field(default_factory=list)
    maintenance: dict[str, str] = field(default_factory=dict)  # site -> what (pause, window)

    @property
    def changes(self) -> list[EndpointOutcome]:
        return [o for o in self.outcomes if o.change is not None]

    def active_down(self, active: Mapping[str, str]) -> bool:
        """An active endpoint (site -> endpoint) is down after this round
        (`check --strict` exits 5 then)."""
        return any(o.after.is_down for o in self.outcomes if active.get(o.site) == o.endpoint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "duration": self.duration,
            "network_ok": self.network_ok,
            "canaries": [_probe_dict(r) for r in self.canaries],
            "maintenance": dict(self.maintenance),
            "endpoints": [
                {
                    "site": o.site,
                    "endpoint": o.endpoint,
                    "ok": o.ok,
                    "observation": o.observation,
                    "health": o.after.status,
                    "change": None
                    if o.change is None
                    else {
                        "from": o.change.from_status,
                        "to": o.change.to_status,
                        "reason": o.change.reason,
                    },
                    "checks": [_probe_dict(r) for r in o.results],
                }
                for o in self.outcomes
            ],
        }


def _probe_dict(r: ProbeResult) -> dict[str, Any]:
    return {
        "check": r.check,
        "ok": r.ok,
        "latency_ms": r.latency_ms,
        "detail": r.detail,
        "warning": r.warning,
    }


class Spawn(Protocol):
    """spawn(key, fn): run fn(store) as long work under `key`; False when that key still
    runs. `short`: bounded work (an upload with its own timeout): under cron `check` runs
    it itself once the state lock is released, not in the detached worker."""

    def __call__(self, key: str, fn: Callable[[Store], None], *, short: bool = False) -> bool: ...


@dataclass
class HookContext:
    """What a stage that runs after each round (backups, the failover runbook) gets.

    `spawn(key, fn)` runs long work (a restore, a backup): inline in a cron `check`, in a
    worker thread with its own state connection in the daemon, so that rounds go on
    meanwhile. A key still running is not started again (and spawn returns False).
    """

    loaded: LoadedConfig
    store: Store
    notifier: Notifier
    result: RoundResult | None
    spawn: Spawn
    daemon: bool = False


Hook = Callable[[HookContext], None]
