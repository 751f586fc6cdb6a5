"""Backup and restore of the same data through the tool (`failover backup run` and
`failover backup restore`, as subprocesses: Python start-up, config, state and all) and
through restic called directly. Target: the tool's overhead within 5%.

    python3 tests/bench/bench_backup.py [--mib 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 - puts the repository on sys.path

PASSWORD = "bench password"


def make_data(root: Path, mib: int) -> Path:
    src = root / "data"
    big = src / "big"
    small = src / "small"
    big.mkdir(parents=True)
    small.mkdir()
    for i in range(max(1, mib // 10)):
        (big / f"f{i:03}").write_bytes(os.urandom(10 << 20))
    for i in range(2000):
        (small / f"s{i:04}.txt").write_text(f"small file {i}\n" * (i % 40 + 1))
    return src


def timed(argv: list[str], env: dict[str, str]) -> float:
    os.sync()  # the previous run's writeback must not slow this one down
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    restic = shutil.which("restic") or sys.exit("restic is not installed")
    root = Path(tempfile.mkdtemp(prefix="failover-bench-backup-"))
    try:
        src = make_data(root, args.mib)
        env = {
            **os.environ,
            "RESTIC_PASSWORD": PASSWORD,
            "FAILOVER_BENCH_PW": PASSWORD,
            "RESTIC_CACHE_DIR": str(root / "cache"),
        }
        times: dict[str, list[float]] = {
            k: [] for k in ("backup direct", "backup tool", "restore direct", "restore tool")
        }
        for rnd in range(args.rounds):
            for who in ("direct", "tool") if rnd % 2 == 0 else ("tool", "direct"):
                repo = root / f"repo-{who}-{rnd}"
                subprocess.run(
                    [restic, "-r", str(repo), "init"], env=env, check=True, capture_output=True
                )
                config = root / f"failover-{who}-{rnd}.yaml"
                config.write_text(
                    f"state: {root}/state-{who}-{rnd}.db\n"
                    "sites:\n  shop:\n    hostname: shop.example.test\n"
                    "    endpoints: {primary: {address: 127.0.0.1}}\n"
                    "    checks: [{type: tcp, port: 9}]\n"
                    f"    backup:\n      repository: {repo}\n"
                    "      password: ${FAILOVER_BENCH_PW}\n"
                    f"      paths: [{src}]\n      cache_dir: {root / 'cache'}\n"
                )
                out = root / f"out-{who}-{rnd}"
                cli = [sys.executable, "-m", "failover", "-q", "-c", str(config), "backup"]
                if who == "direct":
                    times["backup direct"].append(
                        timed([restic, "-r", str(repo), "backup", str(src)], env)
                    )
                    times["restore direct"].append(
                        timed(
                            [restic, "-r", str(repo), "restore", "latest", "--target", str(out)],
                            env,
                        )
                    )
                else:
                    times["backup tool"].append(timed([*cli, "run", "shop"], env))
                    times["restore tool"].append(
                        timed([*cli, "restore", "shop", "--to", str(out)], env)
                    )
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(repo, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"data: {args.mib} MiB in {max(1, args.mib // 10)} large + 2000 small files; "
            f"restic {subprocess.run([restic, 'version'], capture_output=True, text=True).stdout.split()[1]}; "
            f"median of {args.rounds} rounds"
        )
        print(f"{'':10} {'restic':>9} {'failover':>9} {'overhead':>9}")
        for op in ("backup", "restore"):
            d, t = med[f"{op} direct"], med[f"{op} tool"]
            print(f"{op:10} {d:8.2f}s {t:8.2f}s {100 * (t - d) / d:8.1f}%")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
