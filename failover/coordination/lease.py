"""The leader's lease, and when another watcher may take it over. Pure.

One watcher acts: the leader, holding a lease with a fencing epoch that only increases. The
holder counts its lease from *before* it sent the request that granted or renewed it, and
stops acting `margin` seconds before the TTL could have run out; so it stops before anyone
else can have taken over, whatever the network did with its request. Another watcher takes
over only after it has seen the lease unchanged for the whole TTL (on its own monotonic
clock, or by the engine's clock where the engine tells the age of a write): the earliest it
may, never earlier.

All times here are one machine's monotonic clock (CLOCK_BOOTTIME: it keeps counting while
the process is stopped or the machine is suspended); clocks of two machines are never
compared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from failover.coordination.quorum import ENGINE_CLOCK_RESOLUTION


@dataclass(frozen=True)
class Lease:
    """A lease this watcher holds."""

    holder: str
    epoch: int  # the fencing token: only increases from one leader to the next
    token: str  # the engine's handle (S3: the lease object's ETag; etcd: the lease ID)
    ttl: float
    margin: float
    sent_at: float  # local clock, just before the granting or renewing request was sent

    @property
    def valid_until(self) -> float:
        return self.sent_at + self.ttl - self.margin

    def valid(self, now: float) -> bool:
        """The lease cannot have lapsed yet: acting is safe."""
        return now < self.valid_until

    def remaining(self, now: float) -> float:
        return self.valid_until - now

    def renewed(self, token: str, sent_at: float, ttl: float | None = None) -> Lease:
        return replace(self, token=token, sent_at=sent_at, ttl=self.ttl if ttl is None else ttl)


def renew_due(lease: Lease, now: float, every: float) -> bool:
    """Renew once per `every` (the round interval), and in any case when a third of the
    lease's life is gone."""
    return now - lease.sent_at >= min(every, (lease.ttl - lease.margin) / 3)


@dataclass(frozen=True)
class LeaderSeen:
    """A follower's memory of the leader record (engines without server-side expiry)."""

    version: str  # the record's version (ETag) when last seen
    holder: str | None  # None: released
    epoch: int
    changed_at: float  # reader's clock: the latest the record can have been written


def observe_leader(
    prev: LeaderSeen | None,
    version: str,
    holder: str | None,
    epoch: int,
    now: float,
    engine_age: float | None,
) -> LeaderSeen:
    """Fold one read of the leader record into the follower's memory.

    A record first seen now was written at the latest now; where the engine gives its age,
    at the latest `now - (age - resolution)`: the estimate that waits longest."""
    if prev is not None and prev.version == version:
        return prev
    placed = now
    if engine_age is not None:
        placed = now - max(0.0, engine_age - ENGINE_CLOCK_RESOLUTION)
    return LeaderSeen(version, holder, epoch, placed)


def may_take_over(seen: LeaderSeen, now: float, ttl: float) -> bool:
    """The lease in the record is free: released, or unchanged for at least its TTL."""
    return seen.holder is None or now - seen.changed_at >= ttl
