"""The three-watcher story on an S3 bucket with conditional writes (SeaweedFS's `weed
mini`; the lab's own, which also holds the restic repository): see quorum_story.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import quorum_story as story
from tests.support.quorum_lab import QuorumLab, running_quorum_lab

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture(scope="module")
def q() -> Iterator[QuorumLab]:
    yield from running_quorum_lab("s3")


def test_a_partitioned_watcher_never_fails_over_then_down_for_all_fails_over_once(
    q: QuorumLab,
) -> None:
    story.partitioned_watcher_then_down_for_all(q)


def test_the_leader_killed_mid_restore_another_resumes_the_same_run(q: QuorumLab) -> None:
    story.leader_dies_mid_restore(q, "kill")


def test_the_leader_stopped_past_its_lease_does_not_act_when_continued(q: QuorumLab) -> None:
    story.leader_dies_mid_restore(q, "stop")


def test_s3_stopped_nobody_acts_each_alarms_once_then_one_failover(q: QuorumLab) -> None:
    assert q.lab.s3 is not None
    s3 = q.lab.s3
    story.engine_unreachable(q, s3.stop, s3.start)
