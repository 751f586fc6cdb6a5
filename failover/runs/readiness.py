"""Readiness of a standby: could a failover (or a drill) onto it start now? Pure.

- A **warm** standby serves the site as it is: it is ready when its health by the site's
  checks is `up` (the policy's hysteresis included).
- A **cold** standby is restored first, so the site's checks may well fail on it (a bare
  server: 404, no such page). It is ready when it answers over SSH (the restore runs over
  SSH) and passes `failover.standby_checks` (default: the SSH server answers; add, say, a
  tcp check of 443 or "the web server answers at all"). The site's checks are then required
  after the restore, by the run's recheck step, before DNS moves.

The evidence for a cold standby is the newest result of its standby checks, which every
probe round takes (watch/round.py stores it, `Evidence`); `assess()` turns the health,
that evidence and the time into a `Readiness` with a one-line reason. The I/O side (the
stored evidence, probing now) is failover/runs/standby.py. Used by `decide()`, the
preflight step, `failover status` and drills.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from failover.humanize import duration

if TYPE_CHECKING:
    from failover.config.models import Endpoint, Site
    from failover.watch.health import HealthState

Mode = Literal["warm", "cold"]
EVIDENCE_SLACK = 30.0  # seconds: evidence older than 3 intervals plus this is stale


@dataclass(frozen=True)
class CheckOutcome:
    """One standby check's result, as readiness needs it."""

    check: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Evidence:
    """The newest results of an endpoint's standby checks and when they were taken."""

    ts: float
    results: tuple[CheckOutcome, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Evidence | None:
        if not data:
            return None
        try:
            return cls(
                float(data["ts"]),
                tuple(
                    CheckOutcome(str(r["check"]), bool(r["ok"]), str(r["detail"]))
                    for r in data["results"]
                ),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def of(cls, ts: float, results: Iterable[Any]) -> Evidence:
        """From ProbeResults (anything with check, ok and detail)."""
        return cls(ts, tuple(CheckOutcome(r.check, bool(r.ok), r.detail) for r in results))


@dataclass(frozen=True)
class Readiness:
    endpoint: str
    mode: Mode
    ready: bool
    reason: str  # one line: why it is (not) ready
    checked: float | None = None  # when the evidence was taken

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "mode": self.mode,
            "ready": self.ready,
            "reason": self.reason,
            "checked": self.checked,
        }

    @property
    def line(self) -> str:
        return (
            f"{self.endpoint} {'ready' if self.ready else 'NOT READY'} ({self.mode}): {self.reason}"
        )


def evidence_key(site: str, endpoint: str) -> str:
    """Where a round keeps an endpoint's newest standby-check results (the state's meta)."""
    return f"standby_checks:{site}:{endpoint}"


def mode_of(site: Site) -> Mode:
    """cold when a failover restores onto the standby; a site without a backup set has
    nothing to restore, so its standbys must serve as they are (warm)."""
    return "cold" if site.failover.standby == "cold" and site.backup is not None else "warm"


def standby_checks(site: Site, endpoint: Endpoint) -> list[Any]:
    """The checks a cold standby must pass, ready to probe `endpoint`: the site's
    standby_checks (always with an ssh check: the config adds one), each ssh check on the
    endpoint's SSH port unless it names one, each bounded by the longest timeout of the
    site's checks (which the config keeps under the interval), so that they never lengthen
    a probe round."""
    longest = max(c.timeout for c in site.checks)
    out = []
    for check in site.failover.standby_checks:  # the config puts an ssh check in
        check = check.for_endpoint(endpoint)
        update: dict[str, Any] = {}
        if check.timeout > longest:  # never lengthen a round beyond the site's own checks
            update["timeout"] = longest
        out.append(check.model_copy(update=update) if update else check)
    return out


def evidence_max_age(site: Site) -> float:
    return 3 * site.policy.interval + EVIDENCE_SLACK


def assess(
    site: Site,
    endpoint: str,
    health: HealthState,
    evidence: Evidence | None,
    now: float,
    *,
    mode: Mode | None = None,
) -> Readiness:
    """Whether `endpoint` of `site` is ready to be failed over onto, and why (not).

    mode: how the endpoint would be used (a run that restores onto it: cold); defaults to
    the site's `failover.standby`."""
    mode = mode or mode_of(site)
    if mode == "warm":
        if health.status == "up":
            since = f" since {duration(now - health.since)}" if health.since else ""
            return Readiness(
                endpoint, mode, True, f"passes the site's checks (up{since})", health.last_ts
            )
        return Readiness(
            endpoint,
            mode,
            False,
            f"health {health.status}: a warm standby must pass the site's checks",
            health.last_ts,
        )
    ep = site.endpoints.get(endpoint)
    if ep is not None and ep.ssh is None:
        return Readiness(
            endpoint, mode, False, "no ssh settings: a cold standby is restored over SSH"
        )
    if evidence is None:
        return Readiness(endpoint, mode, False, "its standby checks have not run yet")
    age = now - evidence.ts
    if age > evidence_max_age(site):
        return Readiness(
            endpoint,
            mode,
            False,
            f"its standby checks last ran {duration(age)} ago (is the agent running?)",
            evidence.ts,
        )
    return from_results(endpoint, evidence.results, evidence.ts)


def from_results(
    endpoint: str, results: Sequence[CheckOutcome] | Sequence[Any], checked: float | None
) -> Readiness:
    """A cold standby's readiness from its standby checks' results."""
    failing = [f"{r.check}: {r.detail}" for r in results if not r.ok]
    if failing:
        return Readiness(endpoint, "cold", False, "; ".join(failing), checked)
    names = ", ".join(r.check for r in results)
    return Readiness(
        endpoint,
        "cold",
        True,
        f"answers over SSH and passes its standby checks ({names}); the site's checks are "
        "required after the restore",
        checked,
    )


def ready_targets(readiness: Iterable[Readiness]) -> list[str]:
    return [r.endpoint for r in readiness if r.ready]
