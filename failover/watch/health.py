"""Endpoint health as a pure function of timestamped observations and the policy.

No I/O here. `step()` folds one observation into a HealthState; `evaluate()` folds a whole
history. Because the state depends only on the observations (their times and outcomes),
a daemon probing every 10 s and cron runs minutes apart reach the same verdict from the
same history.

    unknown -> up -> suspect -> down -> recovering -> up
                 ^------'  (a success ends suspicion)

- down only after failing continuously for `down_after` (or N failures within a window);
- up again only after succeeding continuously for `up_after`, and never on one success;
- an inconclusive observation (the agent's own network was down) changes nothing;
  `network_ok()` says whether a round's canaries leave the agent's network fine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from failover.humanize import duration

if TYPE_CHECKING:
    from failover.config.models import Config, Policy
    from failover.watch.probes.result import ProbeResult

Status = Literal["unknown", "up", "suspect", "down", "recovering"]
MIN_RECOVERY_SUCCESSES = 2


@dataclass(frozen=True)
class HealthState:
    status: Status = "unknown"
    since: float | None = None  # when `status` began
    last_ts: float | None = None  # the newest observation folded in
    streak_ok: bool | None = None  # outcome of the current run of equal observations
    streak_start: float | None = None
    streak_count: int = 0
    failures: tuple[float, ...] = ()  # failure times inside the policy's window
    outage_start: float | None = None  # first failure of the current outage (for incidents)

    @property
    def is_up(self) -> bool:
        """Serving, as far as a switch decision goes: suspect still counts as up."""
        return self.status in ("up", "suspect")

    @property
    def is_down(self) -> bool:
        return self.status in ("down", "recovering")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = list(self.failures)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> HealthState:
        if not data:
            return cls()
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["failures"] = tuple(fields.get("failures") or ())
        return cls(**fields)


@dataclass(frozen=True)
class Change:
    """A transition caused by one observation."""

    ts: float
    from_status: Status
    to_status: Status
    reason: str

    @property
    def incident(self) -> str | None:
        if self.to_status == "down" and self.from_status not in ("down", "recovering"):
            return "open"
        if self.to_status == "up" and self.from_status in ("down", "recovering"):
            return "close"
        return None


def step(
    state: HealthState, ts: float, ok: bool | None, policy: Policy
) -> tuple[HealthState, Change | None]:
    """Fold one observation (ok: True/False, None for inconclusive) into the state."""
    if ok is None or (state.last_ts is not None and ts <= state.last_ts):
        return state, None  # inconclusive rounds and replays change nothing

    if ok == state.streak_ok and state.streak_start is not None:
        streak_start, streak_count = state.streak_start, state.streak_count + 1
    else:
        streak_start, streak_count = ts, 1
    failures = state.failures
    if policy.window is not None:
        horizon = ts - policy.window.within
        failures = tuple(t for t in failures if t > horizon)
        if not ok:
            failures = (*failures, ts)
    new = replace(
        state,
        last_ts=ts,
        streak_ok=ok,
        streak_start=streak_start,
        streak_count=streak_count,
        failures=failures,
    )

    target, reason = _next_status(new, ts, ok, policy)
    if target == state.status:
        return new, None
    outage_start = new.outage_start
    if (target == "suspect" and state.status in ("unknown", "up")) or (
        target == "down" and outage_start is None
    ):
        outage_start = streak_start
    elif target == "up":
        outage_start = None
    new = replace(new, status=target, since=ts, outage_start=outage_start)
    return new, Change(ts, state.status, target, reason)


def _next_status(s: HealthState, ts: float, ok: bool, policy: Policy) -> tuple[Status, str]:
    failing_for = ts - (s.streak_start or ts)
    if s.status in ("unknown", "up", "suspect"):
        if ok:
            return "up", "first success" if s.status == "unknown" else "check passed again"
        if failing_for >= policy.down_after:
            return "down", f"failing for {duration(failing_for)} ({s.streak_count} round(s))"
        if policy.window is not None and len(s.failures) >= policy.window.failures:
            return "down", (f"{len(s.failures)} failures within {duration(policy.window.within)}")
        return "suspect", "check failed"
    if s.status == "down":
        if ok:
            return _recovered_or(s, ts, policy, "recovering")
        return "down", ""
    # recovering
    if not ok:
        return "down", "failed again while recovering"
    return _recovered_or(s, ts, policy, "recovering")


def _recovered_or(
    s: HealthState, ts: float, policy: Policy, otherwise: Status
) -> tuple[Status, str]:
    passing_for = ts - (s.streak_start or ts)
    if passing_for >= policy.up_after and s.streak_count >= MIN_RECOVERY_SUCCESSES:
        return "up", f"passing for {duration(passing_for)} ({s.streak_count} round(s))"
    return otherwise, "check passed; waiting for up_after"


def evaluate(
    observations: Iterable[tuple[float, bool | None]],
    policy: Policy,
    state: HealthState | None = None,
) -> tuple[HealthState, list[Change]]:
    """Fold a whole history; returns the final state and every transition on the way."""
    state = state or HealthState()
    changes: list[Change] = []
    for ts, ok in sorted(observations, key=lambda o: o[0]):
        state, change = step(state, ts, ok, policy)
        if change is not None:
            changes.append(change)
    return state, changes


def network_ok(config: Config, canaries: Sequence[ProbeResult]) -> bool:
    """Enough canaries passed (`canary_min_ok`) for the round to count: otherwise the
    agent's own network is down and no endpoint is judged by it."""
    if not config.canaries:
        return True
    return sum(r.ok for r in canaries) >= config.canary_min_ok
