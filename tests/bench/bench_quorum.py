"""Several watchers: what deciding together costs.

1. Primary cut off (nftables) -> every authoritative server serves the warm standby, with
   three watchers (each `failover agent` in its own network namespace, coordinating through
   SeaweedFS's S3 or a 3-member etcd cluster) at interval 1 s / down_after 3 s, against the
   single agent of bench_failover.py in the same run. Target: at most one interval more.
   The cut comes at a random offset into the rounds (the same offsets, from a seed, for
   the single agent and for each engine): where it falls decides up to a whole interval.
2. The extra cost per round per watcher: publishing its verdicts (one write), and the whole
   coordination step after a round (publish, read the others, renew the lease, read the
   group's facts, judge), in-process against the same local engines. Target: < 20 ms.

Usage: python3 tests/bench/bench_quorum.py [RUNS] [ROUNDS]   (default 3 runs, 200 rounds; root)
       python3 tests/bench/bench_quorum.py --help   (--timeline: where each run's time went)
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also as `python -m tests.bench...`
from _common import REPO  # noqa: F401 - puts the repository on sys.path

WARM = {"backup": None, "failover": {"standby": "warm", "after_restore": []}}


def group_run(q: Any, n: int, settle: float, timeline: bool = False) -> float:
    q.new_scenario(f"bench{n}")
    q.start_agents(**WARM)
    q.wait(q.all_up, 60, "every watcher to see both endpoints up")
    q.wait(lambda: q.leader() is not None, 30, "a leader")
    time.sleep(1 + settle)
    cut, wall = time.monotonic(), time.time()
    q.lab.primary.blackhole()
    while q.lab.dns_answer() != [q.lab.standby.ip]:
        if time.monotonic() - cut > 120:
            raise SystemExit("no failover within 120 s")
        time.sleep(0.02)
    served = time.monotonic() - cut
    if timeline:
        time.sleep(1)  # the watchers' last writes
        print(f"  {q.engine} run {n + 1}: {describe_timeline(q, wall, served)}", flush=True)
    return served


def _rows(path: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(query, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def describe_timeline(q: Any, cut: float, served: float) -> str:
    """Where the time went, from the watchers' own state (one machine: one wall clock),
    in seconds after the cut: when each watcher's round turned the primary down and when
    that round published it, when each saw the group call it down, who started the run
    and when its DNS switch was done."""
    down, group, run = [], [], ""
    for w in q.watchers:
        path = q.state(w)
        for (ts,) in _rows(
            path,
            "SELECT ts FROM transitions WHERE endpoint='primary' AND to_state='down' AND ts > ?",
            cut,
        )[:1]:
            ends = _rows(path, "SELECT ts + duration FROM rounds WHERE ts >= ? LIMIT 1", ts - 0.01)
            published = f" published {ends[0][0] - cut:.2f}" if ends else ""
            down.append(f"{w} {ts - cut:.2f}{published}")
        for ts, detail in _rows(
            path,
            "SELECT ts, detail FROM group_events WHERE kind='group' AND endpoint='primary' "
            "AND ts > ?",
            cut,
        ):
            if json.loads(detail).get("status") == "down":
                group.append(f"{w} {ts - cut:.2f}")
                break
        for rid, created in _rows(
            path, "SELECT id, created FROM runs WHERE created > ? AND kind='failover'", cut
        ):
            switched = _rows(
                path,
                "SELECT finished FROM run_steps WHERE run_id=? AND name='switch_dns'",
                rid,
            )
            if not run and switched and switched[0][0]:
                run = (
                    f"run started {created - cut:.2f} (leader {q.leader() or '?'}), "
                    f"DNS switched {switched[0][0] - cut:.2f}"
                )
    return (
        f"served {served:.2f} | primary down locally: {', '.join(down) or '-'} | "
        f"group down: {', '.join(group) or '-'} | {run or 'no run seen'}"
    )


def per_round_cost(engine: str, rounds: int) -> tuple[list[float], list[float]]:
    """(publish only, the whole coordination step) in seconds, per round, for one watcher of
    three whose two peers publish too."""
    from failover.config.load import parse_config
    from failover.coordination.session import Session
    from failover.hooks import HookContext, RoundResult
    from failover.notify import Notifier
    from failover.store import Store
    from tests.integration.coordination.conftest import BUCKET, make_bucket
    from tests.support import TEST_AWS_ENV
    from tests.support.etcd_cluster import EtcdCluster
    from tests.support.storage_servers import SeaweedFS

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if engine == "s3":
            server: Any = SeaweedFS(tmp / "s3").start()
            make_bucket(server.endpoint, BUCKET)
            section = f"s3: {{bucket: {BUCKET}, endpoint_url: '{server.endpoint}', access_key_id: '${{AWS_ACCESS_KEY_ID}}', secret_access_key: '${{AWS_SECRET_ACCESS_KEY}}'}}"
        else:
            server = EtcdCluster(tmp / "etcd").start()
            section = f"etcd: {{endpoints: {server.endpoints}}}"
        try:
            text = (
                f"state: {tmp / 'state.db'}\n"
                f"coordination: {{engine: {engine}, watchers: {{a: {{}}, b: {{}}, c: {{}}}}, "
                f"lease_ttl: 10s, selftest_writers: 4, {section}}}\n"
                "sites:\n  shop:\n    hostname: shop.example.test\n"
                "    endpoints: {primary: {address: 127.0.0.1}, standby: {address: 127.0.0.2}}\n"
                "    checks: [{type: tcp, port: 9, timeout: 0.5s}]\n    policy: {interval: 1s}\n"
            )
            sessions = {}
            stores = {}
            for w in "abc":
                loaded = parse_config(
                    text.replace("state.db", f"state-{w}.db"),
                    "bench.yaml",
                    env=TEST_AWS_ENV,
                    watcher=w,
                )
                stores[w] = Store.open(Path(str(loaded.config.state)), lock=False)
                sessions[w] = Session(loaded)
                sessions[w].selftest(stores[w])
            notifier = Notifier([])
            publish: list[float] = []
            whole: list[float] = []
            for i in range(rounds):
                for w in "abc":
                    result = RoundResult(
                        ts=time.time(), duration=0.01, network_ok=True, canaries=[]
                    )
                    ctx = HookContext(
                        sessions[w].loaded, stores[w], notifier, result, spawn=lambda k, f: True
                    )
                    t0 = time.perf_counter()
                    sessions[w].round(ctx)
                    if w == "a" and i >= 5:
                        whole.append(time.perf_counter() - t0)
                        coord = sessions[w].coordinator()
                        t1 = time.perf_counter()
                        coord.put(
                            "watchers/a-probe",
                            {"seq": i, "endpoints": {"shop/primary": {"verdict": "up"}}},
                        )
                        publish.append(time.perf_counter() - t1)
            return publish, whole
        finally:
            server.stop()


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"median {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="?", type=int, default=3, help="failovers per setup")
    parser.add_argument("rounds", nargs="?", type=int, default=200, help="rounds, per-round cost")
    parser.add_argument(
        "--engines", default="s3,etcd", help="comma-separated: s3, etcd (default both)"
    )
    parser.add_argument("--no-single", action="store_true", help="skip the single agent")
    parser.add_argument("--no-cost", action="store_true", help="skip the per-round cost")
    parser.add_argument(
        "--timeline", action="store_true", help="print where each group run's time went"
    )
    parser.add_argument("--seed", type=int, default=11, help="of the cuts' offsets (default 11)")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    rng = random.Random(args.seed)
    settles = [rng.uniform(0, 1.0) for _ in range(args.runs)]  # into a 1 s round
    from bench_failover import one_run

    from tests.support.quorum_lab import QuorumLab

    if not args.no_cost:
        print(
            "| engine | per round: publish the verdicts | per round: the whole coordination step |"
        )
        print("|---|---|---|")
        for engine in engines:
            publish, whole = per_round_cost(engine, args.rounds)
            print(f"| {engine} | {ms(publish)} | {ms(whole)} |", flush=True)
        print()
    rows = []
    if not args.no_single:
        rows.append(("one agent", [one_run("1s", "3s", settle) for settle in settles]))
    for engine in engines:
        with QuorumLab(engine) as q:
            times = [group_run(q, n, settle, args.timeline) for n, settle in enumerate(settles)]
            rows.append((f"three watchers, {engine}", times))
    print(
        "| interval 1 s, down_after 3 s | runs | cut to every authoritative server serving "
        "the standby (min / median / max) |"
    )
    print("|---|---|---|")
    for name, times in rows:
        print(
            f"| {name} | {len(times)} | {min(times):.2f} s / {statistics.median(times):.2f} s / "
            f"{max(times):.2f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
