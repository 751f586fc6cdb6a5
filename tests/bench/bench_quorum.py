"""Several watchers: what deciding together costs.

1. Primary cut off (nftables) -> every authoritative server serves the warm standby, with
   three watchers (each `failover agent` in its own network namespace, coordinating through
   SeaweedFS's S3 or a 3-member etcd cluster) at interval 1 s / down_after 3 s, against the
   single agent of bench_failover.py in the same run. Target: at most one interval more.
2. The extra cost per round per watcher: publishing its verdicts (one write), and the whole
   coordination step after a round (publish, read the others, renew the lease, read the
   group's facts, judge), in-process against the same local engines. Target: < 20 ms.

Usage: python3 tests/bench/bench_quorum.py [RUNS] [ROUNDS]   (default 3 runs, 200 rounds; root)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO  # noqa: F401 - puts the repository on sys.path

WARM = {"backup": None, "failover": {"standby": "warm", "after_restore": []}}


def group_run(q: Any, n: int) -> float:
    q.new_scenario(f"bench{n}")
    q.start_agents(**WARM)
    q.wait(q.all_up, 60, "every watcher to see both endpoints up")
    q.wait(lambda: q.leader() is not None, 30, "a leader")
    time.sleep(1)
    cut = time.monotonic()
    q.lab.primary.blackhole()
    while q.lab.dns_answer() != [q.lab.standby.ip]:
        if time.monotonic() - cut > 120:
            raise SystemExit("no failover within 120 s")
        time.sleep(0.02)
    return time.monotonic() - cut


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
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    from bench_failover import one_run

    from tests.support.quorum_lab import QuorumLab

    print("| engine | per round: publish the verdicts | per round: the whole coordination step |")
    print("|---|---|---|")
    for engine in ("s3", "etcd"):
        publish, whole = per_round_cost(engine, rounds)
        print(f"| {engine} | {ms(publish)} | {ms(whole)} |", flush=True)
    print()
    single = [one_run("1s", "3s") for _ in range(runs)]
    rows = [("one agent", single)]
    for engine in ("s3", "etcd"):
        with QuorumLab(engine) as q:
            rows.append((f"three watchers, {engine}", [group_run(q, n) for n in range(runs)]))
    print(
        "| interval 1 s, down_after 3 s | runs | cut to every authoritative server serving the standby (median / max) |"
    )
    print("|---|---|---|")
    for name, times in rows:
        print(
            f"| {name} | {len(times)} | {statistics.median(times):.2f} s / {max(times):.2f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
