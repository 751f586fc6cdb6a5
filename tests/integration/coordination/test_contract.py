"""One contract, two real engines: every Coordinator behaves the same on SeaweedFS's S3
(conditional writes, with botocore's own parameters and with the headers added through its
event hooks) and on a 3-member etcd cluster. Then what only one engine has: an S3 front
that ignores conditional headers is refused by the self-test; etcd with one member of
three left answers nothing rather than stale data."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from failover.errors import FailoverError, Unreachable
from providers.coordination.base import Coordinator
from tests.integration.coordination.conftest import etcd_config, s3_config
from tests.support import TEST_AWS_ENV
from tests.support.etcd_cluster import EtcdCluster
from tests.support.s3_strip_proxy import StrippingS3Proxy
from tests.support.storage_servers import SeaweedFS

pytestmark = pytest.mark.integration


class FakeClock:
    """The local clock, moved on by the test (the engines' clocks are real)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CoordinatorContract:
    """What every engine must do. Subclasses provide `make(clock=None)`."""

    def make(self, clock: Any = None) -> Coordinator:
        raise NotImplementedError

    def test_create_replace_delete(self) -> None:
        c = self.make()
        assert c.get("doc") is None
        first = c.create("doc", {"n": 1})
        assert first is not None and first.value == {"n": 1}
        assert c.create("doc", {"n": 2}) is None  # exists: lost
        read = c.get("doc")
        assert read is not None and read.value == {"n": 1} and read.version == first.version
        second = c.replace("doc", {"n": 3}, first.version)
        assert second is not None and second.version != first.version
        assert c.replace("doc", {"n": 4}, first.version) is None  # stale: lost
        assert c.replace("missing", {"n": 5}, first.version) is None  # missing: lost (412/404)
        assert c.get("missing") is None
        many, doc = c.get_many(["doc", "missing"]), c.get("doc")
        assert set(many) == {"doc", "missing"} and many["missing"] is None
        # the same document (age, by the engine's clock to the second, may differ between reads)
        assert many["doc"] is not None and doc is not None
        assert (
            (many["doc"].value, many["doc"].version)
            == (doc.value, doc.version)
            == ({"n": 3}, second.version)
        )
        c.put("other", {"x": 1})
        assert sorted(c.keys("")) == ["doc", "other"]
        assert c.delete("other")
        assert c.get("other") is None

    def test_selftest_passes(self) -> None:
        report = self.make().selftest(writers=8, rounds=1)
        assert report.ok, report.failures()
        names = [name for name, _, _ in report.checks]
        assert "8 concurrent create-if-absent: exactly one wins" in names
        assert "8 concurrent compare-and-swap: exactly one wins" in names
        assert self.make().keys("selftest/") == []  # cleaned up (a fresh prefix each make)

    def test_one_leader_epochs_increase_and_a_stale_leader_is_fenced(self) -> None:
        clock = FakeClock()
        a, b = self.make(clock), self.make(clock)
        b.prefix = a.prefix  # the same group
        mem_a: dict[str, Any] = {}
        mem_b: dict[str, Any] = {}
        lease_a, info = a.campaign("a", 3.0, 1.0, mem_a)
        assert lease_a is not None and info.holder == "a"
        lease_b, info = b.campaign("b", 3.0, 1.0, mem_b)
        assert lease_b is None and info.holder == "a" and info.epoch == lease_a.epoch
        renewed = a.renew(lease_a)
        assert renewed is not None and renewed.epoch == lease_a.epoch
        fact = a.create_fenced(renewed, "sites/shop/run", {"uid": "r1"})
        assert fact is not None

        # a stops renewing (stopped, or cut off); b sees the lease lapse and takes over
        deadline = time.monotonic() + 20
        while lease_b is None:
            clock.now += 1.0
            time.sleep(1.0)  # engines with a server-side TTL need real time to pass
            lease_b, info = b.campaign("b", 3.0, 1.0, mem_b)
            assert time.monotonic() < deadline, "b never took over"
        assert lease_b.epoch > renewed.epoch and info.holder == "b"
        # the old leader cannot renew, and its fenced writes fail
        assert a.renew(renewed) is None
        assert a.replace_fenced(renewed, "sites/shop/run", {"uid": "stale"}, fact.version) is None
        taken = b.replace_fenced(lease_b, "sites/shop/run", {"uid": "r1", "by": "b"}, fact.version)
        assert taken is not None
        doc = b.get("sites/shop/run")
        assert doc is not None and doc.value["by"] == "b"
        # released: the next campaign takes it at once, with a higher epoch again
        b.resign(lease_b)
        lease_c = None
        for _ in range(10):
            lease_c, _ = a.campaign("a", 3.0, 1.0, mem_a)
            if lease_c is not None:
                break
            time.sleep(0.2)
        assert lease_c is not None and lease_c.epoch > lease_b.epoch

    def test_concurrent_campaigns_elect_exactly_one(self) -> None:
        first = self.make()
        prefix = first.prefix
        winners: list[str] = []
        barrier = threading.Barrier(8)

        def run(i: int) -> None:
            c = self.make()
            c.prefix = prefix
            barrier.wait(10)
            lease, _ = c.campaign(f"w{i}", 5.0, 1.0, {})
            if lease is not None:
                winners.append(lease.holder)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(winners) == 1, winners

    def test_errors_name_the_engine_and_hold_no_secret(self) -> None:
        c = self.make()
        with pytest.raises(FailoverError) as caught:
            c.put("bad", {"x": object()})  # not JSON: a bug's error still crosses the boundary
        assert c.label in str(caught.value)


class TestS3(CoordinatorContract):
    @pytest.fixture(autouse=True)
    def _server(self, seaweed: SeaweedFS) -> None:
        self.seaweed = seaweed

    def make(self, clock: Any = None) -> Coordinator:
        from providers.coordination.s3 import S3Coordinator

        return S3Coordinator(s3_config(self.seaweed.endpoint), clock=clock)

    def test_seaweedfs_gives_the_age_of_a_write_by_its_own_clock(self) -> None:
        c = self.make()
        c.put("aged", {"x": 1})
        time.sleep(2.1)
        item = c.get("aged")
        assert item is not None and item.age is not None and 1.0 <= item.age <= 4.0

    def test_unreachable_is_one_clear_line(self) -> None:
        from providers.coordination.s3 import S3Coordinator

        c = S3Coordinator(s3_config("http://127.0.0.1:9", timeout="1s"))
        with pytest.raises(Unreachable) as caught:
            c.get("x")
        text = str(caught.value)
        assert "coordination engine s3" in text and "\n" not in text
        assert TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in text


class TestS3ThroughEventHooks(TestS3):
    """The headers added through botocore's before-sign event (older botocore)."""

    def make(self, clock: Any = None) -> Coordinator:
        from providers.coordination.s3 import S3Coordinator

        return S3Coordinator(s3_config(self.seaweed.endpoint), clock=clock, native_conditions=False)


class TestEtcd(CoordinatorContract):
    @pytest.fixture(autouse=True)
    def _cluster(self, etcd: EtcdCluster) -> None:
        self.cluster = etcd

    def make(self, clock: Any = None) -> Coordinator:
        from providers.coordination.etcd import EtcdCoordinator

        return EtcdCoordinator(etcd_config(self.cluster.endpoints), clock=clock)


def test_selftest_refuses_a_bucket_that_ignores_conditional_headers(seaweed: SeaweedFS) -> None:
    from providers.coordination.s3 import S3Coordinator

    with StrippingS3Proxy(
        seaweed.endpoint, TEST_AWS_ENV["AWS_ACCESS_KEY_ID"], TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"]
    ) as proxy:
        report = S3Coordinator(s3_config(proxy.endpoint)).selftest(writers=8, rounds=1)
        assert proxy.stripped > 0
    assert not report.ok
    failures = " | ".join(report.failures())
    assert "If-None-Match ignored" in failures and "If-Match ignored" in failures
    assert "8 concurrent create-if-absent: exactly one wins: 8 won" in failures


def test_etcd_with_one_member_left_answers_nothing_rather_than_stale(
    tmp_path: Any,
) -> None:
    from providers.coordination.etcd import EtcdCoordinator
    from tests.support import require_binary

    require_binary("etcd")
    with EtcdCluster(tmp_path / "etcd") as cluster:
        c = EtcdCoordinator(etcd_config(cluster.endpoints, timeout="1.5s"))
        c.put("doc", {"n": 1})
        cluster.kill_majority()
        started = time.monotonic()
        with pytest.raises(Unreachable):
            c.get("doc")  # linearizable: no quorum, no answer
        assert time.monotonic() - started < 5  # bounded by the configured timeout
        with pytest.raises(Unreachable):
            c.create("new", {"n": 2})
        cluster.start_member(1)
        cluster.wait_healthy()
        item = c.get("doc")
        assert item is not None and item.value == {"n": 1}
