"""The three-watcher story on a 3-member etcd cluster (Debian's etcd-server 3.4) on
loopback: see quorum_story.py. The engine's outage: two members of three stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import quorum_story as story
from tests.support.quorum_lab import QuorumLab, running_quorum_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture(scope="module")
def q() -> Iterator[QuorumLab]:
    yield from running_quorum_lab("etcd")


def test_a_partitioned_watcher_never_fails_over_then_down_for_all_fails_over_once(
    q: QuorumLab,
) -> None:
    story.partitioned_watcher_then_down_for_all(q)


def test_the_leader_killed_mid_restore_another_resumes_the_same_run(q: QuorumLab) -> None:
    story.leader_dies_mid_restore(q, "kill")


def test_the_leader_stopped_past_its_lease_does_not_act_when_continued(q: QuorumLab) -> None:
    story.leader_dies_mid_restore(q, "stop")


def test_etcd_down_to_one_member_nobody_acts_each_alarms_once_then_one_failover(
    q: QuorumLab,
) -> None:
    def back() -> None:
        for i in range(q.etcd.size):
            q.etcd.start_member(i)
        q.etcd.wait_healthy()

    story.engine_unreachable(q, q.etcd.kill_majority, back)
