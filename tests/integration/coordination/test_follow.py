"""A leader follows the group between rounds, on both real engines (in-process sessions,
each watcher with its own state): when its own round saw the group one verdict short of
calling the primary down, it decides as soon as that verdict is published, not at its next
round; a watcher that may not act never does, and neither does a leader whose lease may
have lapsed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failover.config.load import parse_config
from failover.coordination.session import Session
from failover.hooks import HookContext, RoundResult
from failover.notify import Notifier
from failover.store import Store
from failover.watch.health import HealthState
from tests.integration.coordination.conftest import BUCKET
from tests.support import TEST_AWS_ENV
from tests.support.etcd_cluster import EtcdCluster
from tests.support.storage_servers import SeaweedFS

pytestmark = pytest.mark.integration

SITE, EP = "shop", "primary"
INTERVAL = 5.0  # long, so that a loaded machine still publishes within one interval


@pytest.fixture(params=["s3", "etcd"])
def section(request: pytest.FixtureRequest) -> str:
    if request.param == "s3":
        seaweed: SeaweedFS = request.getfixturevalue("seaweed")
        return (
            f"s3: {{bucket: {BUCKET}, endpoint_url: '{seaweed.endpoint}', timeout: 3s, "
            "access_key_id: '${AWS_ACCESS_KEY_ID}', secret_access_key: '${AWS_SECRET_ACCESS_KEY}', "
        )
    etcd: EtcdCluster = request.getfixturevalue("etcd")
    return f"etcd: {{endpoints: {etcd.endpoints}, timeout: 2s, "


class Watcher:
    """One watcher: its session, its own state, and what its decision hook saw."""

    def __init__(self, name: str, text: str, state: Path) -> None:
        loaded = parse_config(text, "follow.yaml", env=TEST_AWS_ENV, watcher=name)
        self.store = Store.open(state)
        self.session = Session(loaded)
        self.decisions: list[str] = []  # the group's primary verdict, each time it decided
        self.decided = threading.Event()
        self.session.on_change = self._decide

    def _decide(self, ctx: HookContext) -> None:
        # the decision gets a context of its own: this watcher's state, another connection
        assert ctx.daemon and ctx.store.path == self.store.path and ctx.store is not self.store
        self.decisions.append(self.session.health(SITE)[EP].status)
        self.decided.set()

    def health(self, status: str) -> None:
        now = time.time()
        for ep, st in ((EP, status), ("standby", "up")):
            state = HealthState(status=st, since=now, last_ts=now)  # type: ignore[arg-type]
            self.store.record_observation(SITE, ep, now, st == "up", state.to_dict(), None, None)

    def round(self) -> None:
        result = RoundResult(ts=time.time(), duration=0.01, network_ok=True, canaries=[])
        ctx = HookContext(
            self.session.loaded, self.store, Notifier([]), result, spawn=_no_spawn, daemon=True
        )
        self.session.round(ctx)

    def following(self) -> bool:
        follower = self.session.follower
        return follower is not None and follower.is_alive()

    def stop_following(self) -> None:
        follower = self.session.follower
        self.session._follow_stop.set()
        if follower is not None:
            follower.join(30)


def _no_spawn(key: str, fn: Callable[[Store], None]) -> bool:
    return True


@pytest.fixture
def group(section: str, tmp_path: Path) -> Iterator[dict[str, Watcher]]:
    import uuid

    text = (
        f"coordination: {{engine: {section.split(':')[0]}, watchers: {{a: {{}}, b: {{}}, "
        "c: {can_act: false}}, lease_ttl: 8s, lease_margin: 2s, selftest_writers: 2, "
        f"{section}prefix: 'follow-{uuid.uuid4().hex[:8]}/'}}}}\n"
        "sites:\n  shop:\n    hostname: shop.example.test\n"
        "    endpoints: {primary: {address: 127.0.0.1}, standby: {address: 127.0.0.2}}\n"
        f"    checks: [{{type: tcp, port: 9, timeout: 0.5s}}]\n"
        f"    policy: {{interval: {INTERVAL:g}s, down_after: 15s}}\n"
    )
    watchers = {w: Watcher(w, text, tmp_path / f"{w}.db") for w in "abc"}
    try:
        for w in watchers.values():
            w.health("up")
        for _ in range(2):  # sequence numbers seen advancing: every verdict is fresh
            for w in watchers.values():
                w.round()
        assert watchers["a"].session.may_act(), "a campaigned first: the leader"
        yield watchers
    finally:
        for w in watchers.values():
            w.stop_following()
            w.session.coordinator().close()
            w.store.close()


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_leader_decides_as_soon_as_the_deciding_verdict_is_published(
    group: dict[str, Watcher],
) -> None:
    a, b, c = group["a"], group["b"], group["c"]
    for w in (b, c):
        w.health("suspect")  # failing, not yet for down_after: they publish `unknown`
        w.round()
    a.health("down")
    a.round()  # a alone sees it down: one verdict short of the quorum
    assert a.session.verdicts[(SITE, EP)].status == "unknown"
    assert a.following(), "the leader follows the watchers it waits for"
    assert not b.following() and not c.following()  # b is not the leader; c may not act
    b.health("down")
    b.round()  # b's verdict: two of three, the quorum
    assert a.decided.wait(INTERVAL * 2), "the leader did not decide before its next round"
    assert a.decisions == ["down"]
    assert a.session.health(SITE)[EP].status == "down"
    _wait(lambda: not a.following(), "the follower to stop once the group is down")
    assert not b.decided.is_set() and not c.decided.is_set()
    a.round()  # its next round agrees, and decides through the round's own hooks only
    assert a.session.verdicts[(SITE, EP)].status == "down" and not a.following()
    assert a.decisions == ["down"]


def test_no_following_when_another_verdict_would_not_decide(group: dict[str, Watcher]) -> None:
    a, b, c = group["a"], group["b"], group["c"]
    c.health("suspect")
    c.round()
    b.round()  # b still sees it up: max_up 0, c's down verdict would not decide
    a.health("down")
    a.round()
    assert a.session.verdicts[(SITE, EP)].status == "disagree"
    assert not a.following()


def test_a_leader_whose_lease_may_have_lapsed_does_not_decide_between_rounds(
    group: dict[str, Watcher],
) -> None:
    a, b, c = group["a"], group["b"], group["c"]
    for w in (b, c):
        w.health("suspect")
        w.round()
    a.health("down")
    a.round()
    assert a.following()
    lease = a.session.lease
    assert lease is not None
    # a's process was stopped long enough (its clock keeps counting): the lease may have
    # lapsed (the config keeps a lease longer than a round: the round is over too)
    lapse = lease.remaining(a.session.clock()) + 0.1
    real = a.session.clock
    a.session.clock = lambda: real() + lapse
    b.health("down")
    b.round()
    _wait(lambda: not a.following(), "the follower to give up")
    assert not a.decided.is_set() and not a.session.may_act()


def test_a_leader_that_gave_its_lease_up_does_not_decide_between_rounds(
    group: dict[str, Watcher],
) -> None:
    a, b, c = group["a"], group["b"], group["c"]
    for w in (b, c):
        w.health("suspect")
        w.round()
    a.health("down")
    a.round()
    assert a.following()
    with a.session._lock:  # as for a new epoch: the lease released, then campaigned for
        lease = a.session.lease
        assert lease is not None
        a.session.coordinator().resign(lease)
        a.session.lease = None
    b.health("down")
    _wait(lambda: (b.round(), b.session.may_act())[1], "b to take the released lease")
    _wait(lambda: not a.following(), "the follower to give up")
    assert not a.decided.is_set() and not b.decided.is_set()
