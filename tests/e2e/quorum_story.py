"""The three-watcher story (issue #11), told the same way on both engines
(test_quorum_s3.py: SeaweedFS's S3 with conditional writes; test_quorum_etcd.py: a 3-member
etcd cluster). Three `failover agent` processes, each in its own network namespace with its
own state; a and b may act, c votes only (and holds no credentials). Interval 1 s, down
after 3 s, lease TTL 4 s. The evidence: PowerDNS's own log of zone changes (with the address
each came from), the DNS served, every watcher's run journal and `status`, the group's
records in the engine, the notifications."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.support.lab import HOSTNAME, SITE
from tests.support.quorum_lab import QuorumLab

TTL, INTERVAL = 4.0, 1.0
# The machine is shared and loaded: a deadline's slack, not a speed claim (speed is
# measured by tests/bench/bench_quorum.py).
SLACK = 4.0
WARM = {"backup": None, "failover": {"standby": "warm", "after_restore": []}}


def _group_runs(q: QuorumLab, w: str) -> set[str]:
    return {json.loads(r[4]).get("group_run") for r in q.runs(w)} - {None}


def _leader(q: QuorumLab, timeout: float = 30) -> str:
    found: list[str] = []

    def has() -> bool:
        leader = q.leader()
        if leader:
            found.append(leader)
        return bool(leader)

    q.wait(has, timeout, "a leader")
    return found[-1]


def _served(q: QuorumLab) -> list[str]:
    return q.lab.dns_answer(HOSTNAME, "A")


def partitioned_watcher_then_down_for_all(q: QuorumLab) -> None:
    """One watcher cut off from the primary: never a failover, and status shows the
    disagreement. Then the primary really down for all: exactly one failover, by the
    leader, DNS switched once; every watcher's journal holds the same run; the report says
    which watchers saw what and when the group decided."""
    q.new_scenario("partition")
    agents = q.start_agents(**WARM)
    q.wait(q.all_up, 60, "every watcher to see both endpoints up")
    leader = _leader(q)
    other = "b" if leader == "a" else "a"

    q.partition(other)  # an acting watcher's own path to the primary breaks
    q.wait(
        lambda: q.group_view("c")["endpoints"].get("primary", {}).get("disagreement") is True,
        30,
        f"the disagreement to show ({other} sees the primary down)",
    )
    time.sleep(3 + 4 * INTERVAL)  # well past down_after for the partitioned watcher
    for w in q.watchers:
        assert q.runs(w) == [], f"{w} started a run"
    assert _served(q) == [q.lab.primary.ip]
    assert q.zone_changes() == []
    view = q.group_view(other)
    primary = view["endpoints"]["primary"]
    assert primary["group"] == "up" and primary["disagreement"] is True
    verdicts = {w["watcher"]: w["verdict"] for w in primary["watchers"]}
    assert verdicts[other] == "down" and verdicts[leader] == "up", verdicts
    text = agents[other].cli("status").stdout
    assert (
        "primary: group UP" in text and f"{other} DOWN" in text and "watchers disagree" in text
    ), text
    status = q.status(other)
    assert any("watchers disagree about primary" in w for w in status["warnings"]), status
    q.wait(
        lambda: any("watchers disagree about primary" in t for t in q.titles()),
        10,
        "the leader's notice of the disagreement",
    )
    assert not any("DOWN" in t for t in q.titles())
    q.heal_partition(other)
    q.wait(q.all_up, 30, "the partitioned watcher to see the primary up again")

    # the primary down for everyone
    q.lab.primary.blackhole()
    q.wait(lambda: _served(q) == [q.lab.standby.ip], 60, "DNS to serve the standby")
    leader_now = q.leader() or leader
    q.wait(
        lambda: all(len(_group_runs(q, w)) == 1 for w in q.watchers),
        20,
        "every watcher's journal to hold the group's run",
    )
    time.sleep(3)  # no second run, no second switch
    uids = {frozenset(_group_runs(q, w)) for w in q.watchers}
    assert len(uids) == 1, uids  # the same run everywhere
    changes = q.zone_changes()
    assert len(changes) == 1, changes  # DNS switched once ...
    assert q.nets[leader_now].ip in changes[0]  # ... by the leader
    assert len(q.dns_switches(leader_now)) == 1
    for w in q.watchers:
        if w != leader_now:
            assert q.dns_switches(w) == [], f"{w} switched DNS"
        assert q.runs(w)[0][2] == "done"
    # notices travel in batches through a child process: wait for them (a loaded machine)
    q.wait(
        lambda: any("failover to standby started" in t for t in q.titles()),
        30,
        "the leader's notice of the failover",
    )
    titles = q.titles()
    assert sum("failover to standby started" in t for t in titles) == 1, titles
    assert sum("primary is DOWN for the group" in t for t in titles) == 1, titles
    report = agents["c"].cli("report").stdout
    for fragment in (
        "watcher a sees primary down",
        "watcher b sees primary down",
        "the group calls primary DOWN",
        "Probed from watcher c on ",
    ):
        assert fragment in report, report


def leader_dies_mid_restore(q: QuorumLab, how: str) -> None:
    """The leader is SIGKILLed (how="kill") or SIGSTOPped past its lease (how="stop") in the
    middle of the restore: the other acting watcher takes over within the TTL plus one
    interval, resumes the same run from its first unfinished step and completes it once. A
    stopped leader that is continued does not act: its epoch is stale."""
    q.new_scenario(f"leader-{how}")
    q.lab.primary.ssh("head -c 30000000 /dev/urandom > /srv/site/data/big.bin")
    agents = q.make_agents()
    agents["a"].cli("backup", "run")  # a snapshot to restore (a can act: it holds the keys)
    for agent in agents.values():
        agent.start()
    q.wait(q.all_up, 60, "every watcher to see both endpoints up")
    leader = _leader(q)
    heir = "b" if leader == "a" else "a"
    q.lab.primary.blackhole()
    q.wait(
        lambda: (
            q.db(leader, "SELECT 1 FROM run_steps WHERE name='restore' AND status='running'") != []
        ),
        60,
        f"{leader} to start the restore",
    )
    uid = _group_runs(q, leader).pop()
    hit = time.monotonic()
    if how == "kill":
        agents[leader].kill()
    else:
        agents[leader].pause()
    q.wait(lambda: q.leader() == heir, TTL + INTERVAL + SLACK + 5, f"{heir} to take the lease over")
    took = time.monotonic() - hit
    assert took <= TTL + INTERVAL + SLACK, f"took over after {took:.1f}s"
    q.wait(lambda: _served(q) == [q.lab.standby.ip], 90, "the resumed failover to switch DNS")
    q.wait(lambda: (q.runs(heir) or [(0, 0, "")])[-1][2] == "done", 60, f"{heir}'s run done")
    runs = q.runs(heir)
    assert len(runs) == 1 and json.loads(runs[0][4])["group_run"] == uid  # the same run
    steps = {r[0]: r for r in q.db(heir, "SELECT name, status, attempts FROM run_steps")}
    assert steps["preflight"][1] == "done" and steps["preflight"][2] == 1  # not repeated
    assert steps["restore"][1] == "done" and steps["switch_dns"][1] == "done"
    changes = q.zone_changes()
    assert len(changes) == 1 and q.nets[heir].ip in changes[0], changes
    _, body = q.lab.https_get(q.lab.standby, "/")
    assert q.lab.marker in body
    if how == "stop":
        agents[leader].resume()  # it wakes up believing it is mid-restore, as the leader
        q.wait(
            lambda: (
                _group_runs(q, leader) == {uid}
                and (q.runs(leader) or [(0, 0, "")])[-1][2] == "done"
            ),
            60,
            f"{leader} to learn the group's outcome",
        )
        time.sleep(3)
        assert "run stopped:" in agents[leader].tail(20000) or "may have lapsed" in agents[
            leader
        ].tail(20000)
        assert q.dns_switches(leader) == []  # it never switched DNS
        assert len(q.zone_changes()) == 1  # nor did anyone else a second time
        assert agents[leader].running
    q.wait(lambda: any("failover to standby complete" in t for t in q.titles()), 20, "the notice")
    time.sleep(1)
    titles = q.titles()
    assert sum("failover to standby complete" in t for t in titles) == 1, titles


def engine_unreachable(q: QuorumLab, cut: Any, restore: Any) -> None:
    """The engine unreachable: no watcher acts, each alarms once; when it returns the group
    resumes, without a second run."""
    q.new_scenario("engine")
    q.start_agents(**WARM)
    q.wait(q.all_up, 60, "every watcher to see both endpoints up")
    _leader(q)
    cut()
    q.wait(
        lambda: sum("lost contact with the coordination engine" in t for t in q.titles()) == 3,
        30,
        "every watcher to alarm",
    )
    q.lab.primary.blackhole()
    time.sleep(3 + TTL + 3 * INTERVAL)  # down everywhere, past the lease: still nobody acts
    for w in q.watchers:
        assert q.runs(w) == [], f"{w} acted without the engine"
    assert _served(q) == [q.lab.primary.ip]
    restore()
    q.wait(
        lambda: _served(q) == [q.lab.standby.ip],
        60,
        "the group to fail over once the engine is back",
    )
    q.wait(
        lambda: (
            any("failover to standby complete" in t for t in q.titles())
            and sum("engine answers again" in t for t in q.titles()) == 3
        ),
        30,
        "the completion notice and every watcher's all-clear",
    )
    time.sleep(2)
    titles = q.titles()
    for w in q.watchers:
        assert sum(f"[watcher {w}] lost contact" in t for t in titles) == 1, titles  # once each
        assert len(_group_runs(q, w)) == 1
    assert sum("failover to standby started" in t for t in titles) == 1, titles
    assert len(q.zone_changes()) == 1


def site_status(q: QuorumLab, w: str) -> dict[str, Any]:
    return q.status(w)


__all__ = [
    "SITE",
    "engine_unreachable",
    "leader_dies_mid_restore",
    "partitioned_watcher_then_down_for_all",
]
