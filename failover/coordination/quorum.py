"""Watcher verdicts -> the group's verdict. Pure: the same verdicts give the same answer.

Each watcher publishes, per endpoint, what its own health state machine says: `down` (it
has failed continuously for `down_after`, or is recovering from that), `up`, or `unknown`
(no verdict yet, only suspect, or the watcher's own canaries fail). An endpoint is down for
the group when at least `quorum` watchers hold fresh down verdicts and no more than
`max_up` fresh up verdicts exist; up when at least `quorum` fresh up verdicts exist. The
quorum counts the configured watchers, not those that happen to be reachable.

A verdict is fresh when the watcher's publication advanced within a window (about three
intervals). Freshness never compares the clocks of two machines: `observe()` notes when the
reader saw a watcher's sequence number advance, on the reader's own monotonic clock, and
where the engine tells the age of a write by its own clock (S3's Last-Modified against its
Date), that age places the write on the reader's clock.

`may_turn_down()` tells the leader when the group is one publication away from calling an
endpoint down (the watchers still short of it are failing, only not yet for `down_after`):
then it reads their next publications as they come instead of at its own next round.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["up", "down", "unknown"]
GroupStatus = Literal["up", "down", "disagree", "unknown"]

# The engine's clocks (Date, Last-Modified) have one-second resolution.
ENGINE_CLOCK_RESOLUTION = 1.0


def verdict_of(health: str, network_ok: bool) -> Verdict:
    """What a watcher publishes for an endpoint in local health state `health`."""
    if not network_ok:
        return "unknown"  # its own canaries fail: its view of the endpoints counts for nothing
    if health in ("down", "recovering"):
        return "down"
    if health == "up":
        return "up"
    return "unknown"  # unknown, or suspect: failing, but not yet for down_after


@dataclass(frozen=True)
class Rule:
    """The quorum rule of a group."""

    watchers: int  # configured, not reachable
    quorum: int
    max_up: int

    def describe(self) -> str:
        return (
            f"down when >= {self.quorum} of {self.watchers} watchers see it down and "
            f"<= {self.max_up} see it up"
        )


@dataclass(frozen=True)
class Seen:
    """A reader's memory of one watcher's publications."""

    seq: int
    boot: str  # the publishing process's nonce: a restarted watcher counts anew
    advanced_at: float | None  # reader's clock: when it last advanced (None: not seen to)


def observe(prev: Seen | None, seq: int, boot: str, now: float, engine_age: float | None) -> Seen:
    """Fold one read of a watcher's publication into the reader's memory.

    `now` is the reader's monotonic clock; `engine_age` how old the engine says the write is
    (by its own clock), or None when the engine does not tell."""
    placed = None
    if engine_age is not None:
        # the youngest the write can be, given the engine clock's resolution
        placed = now - max(0.0, engine_age - ENGINE_CLOCK_RESOLUTION)
    if prev is None:
        return Seen(seq, boot, placed)  # first sight: fresh only if the engine says when
    if prev.boot != boot or seq != prev.seq:
        return Seen(seq, boot, placed if placed is not None else now)
    return prev


def is_fresh(seen: Seen | None, now: float, window: float) -> bool:
    return seen is not None and seen.advanced_at is not None and now - seen.advanced_at <= window


def age(seen: Seen | None, now: float) -> float | None:
    """Seconds since the publication last advanced, as far as the reader knows."""
    if seen is None or seen.advanced_at is None:
        return None
    return max(0.0, now - seen.advanced_at)


@dataclass(frozen=True)
class WatcherVerdict:
    """One watcher's verdict on one endpoint, as the reader sees it."""

    watcher: str
    verdict: Verdict
    health: str  # its detailed local status (up, suspect, down, ...)
    fresh: bool
    age: float | None = None  # seconds since its publication advanced (None: unknown)
    since: float | None = None  # its own clock: when its local status began (display only)


@dataclass(frozen=True)
class GroupVerdict:
    status: GroupStatus
    down: tuple[str, ...] = ()  # watchers with a fresh down verdict
    up: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # fresh, but no verdict either way
    stale: tuple[str, ...] = ()  # configured watchers without a fresh verdict
    reason: str = ""

    @property
    def disagreement(self) -> bool:
        """Fresh verdicts both ways: some watcher sees what the others do not."""
        return bool(self.down) and bool(self.up)


def group_verdict(
    rule: Rule, configured: Sequence[str], verdicts: Iterable[WatcherVerdict]
) -> GroupVerdict:
    by_name: Mapping[str, WatcherVerdict] = {v.watcher: v for v in verdicts}
    down: list[str] = []
    up: list[str] = []
    unknown: list[str] = []
    stale: list[str] = []
    for name in configured:
        v = by_name.get(name)
        if v is None or not v.fresh:
            stale.append(name)
        elif v.verdict == "down":
            down.append(name)
        elif v.verdict == "up":
            up.append(name)
        else:
            unknown.append(name)
    counts = f"{len(down)} down, {len(up)} up, {len(unknown)} unknown, {len(stale)} stale"
    status: GroupStatus
    if len(down) >= rule.quorum and len(up) <= rule.max_up:
        status, reason = "down", f"{counts}: quorum {rule.quorum} reached"
    elif len(up) >= rule.quorum:
        status, reason = "up", f"{counts}"
    elif down and up:
        status, reason = "disagree", f"{counts}: no quorum either way"
    else:
        status, reason = "unknown", f"{counts}: too few fresh verdicts for quorum {rule.quorum}"
    return GroupVerdict(status, tuple(down), tuple(up), tuple(unknown), tuple(stale), reason)


def may_turn_down(rule: Rule, group: GroupVerdict, turning: Iterable[str]) -> bool:
    """Not down for the group yet, but it would be once the watchers in `turning` (fresh,
    failing, but not yet for `down_after`: they publish `unknown`) publish down."""
    if group.status == "down":
        return False
    coming = [w for w in dict.fromkeys(turning) if w in group.unknown]
    return (
        bool(coming)
        and len(group.down) + len(coming) >= rule.quorum
        and len(group.up) <= rule.max_up
    )
