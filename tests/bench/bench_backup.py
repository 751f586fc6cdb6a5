"""Backup and restore of the same data through the tool (`failover backup run` and
`failover backup restore`, as subprocesses: Python start-up, config, state and all) and
through restic called directly. Target: the tool's overhead within 5%.

    python3 tests/bench/bench_backup.py [--mib 2000] [--rounds 3]

With --incremental: the no-change incremental backup (2,000 files, 200 MiB, backed up once
before), by raw restic, by resticpy (from PyPI, in a virtual environment of its own under
the bench cache) and by `failover backup run`, each into its own repository, run by run in
turn. Target: the tool within 1.1x raw restic.

    python3 tests/bench/bench_backup.py --incremental [--rounds 15]
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


FLOOR_SCRIPT = """
import subprocess, sys
import typer, pydantic.main, yaml, sqlite3  # what `failover backup run` cannot do without
sys.exit(subprocess.run(sys.argv[1:]).returncode)
"""
RESTICPY_SCRIPT = """
import sys
import restic
restic.repository = sys.argv[1]
restic.backup(paths=[sys.argv[2]])
"""


def make_incremental_data(root: Path) -> Path:
    """2,000 files, 200 MiB: 20 of 10 MiB and 1,980 small ones."""
    src = root / "data"
    (src / "big").mkdir(parents=True)
    (src / "small").mkdir()
    for i in range(20):
        (src / "big" / f"f{i:02}").write_bytes(os.urandom(10 << 20))
    for i in range(1980):
        (src / "small" / f"s{i:04}.txt").write_text(f"small file {i}\n" * (i % 60 + 1))
    return src


def incremental(rounds: int, restic: str) -> None:
    from _common import (
        failover_bin,
        installed_failover,
        load_line,
        ms_summary,
        peer_venv,
        ratio_summary,
        run_timed,
    )

    python = installed_failover()
    py_bin = peer_venv("resticpy", ["resticpy"])
    root = Path(tempfile.mkdtemp(prefix="failover-bench-incr-"))
    try:
        src = make_incremental_data(root)
        env = {
            **os.environ,
            "RESTIC_PASSWORD": PASSWORD,
            "FAILOVER_BENCH_PW": PASSWORD,
            "RESTIC_CACHE_DIR": str(root / "cache"),
        }
        repos = {who: root / f"repo-{who}" for who in ("restic", "resticpy", "failover")}
        for repo in repos.values():
            subprocess.run(
                [restic, "-r", str(repo), "init"], env=env, check=True, capture_output=True
            )
        config = root / "failover.yaml"
        config.write_text(
            f"state: {root}/state.db\n"
            "sites:\n  shop:\n    hostname: shop.example.test\n"
            "    endpoints: {primary: {address: 127.0.0.1}}\n"
            "    checks: [{type: tcp, port: 9}]\n"
            f"    backup:\n      repository: {repos['failover']}\n"
            "      password: ${FAILOVER_BENCH_PW}\n"
            f"      paths: [{src}]\n      cache_dir: {root / 'cache'}\n"
        )
        script = root / "resticpy_backup.py"
        script.write_text(RESTICPY_SCRIPT)
        floor = root / "floor.py"
        floor.write_text(FLOOR_SCRIPT)
        repos["floor"] = root / "repo-floor"
        subprocess.run(
            [restic, "-r", str(repos["floor"]), "init"], env=env, check=True, capture_output=True
        )
        argv = {
            "restic": [restic, "-r", str(repos["restic"]), "backup", str(src)],
            "resticpy": [str(py_bin / "python"), str(script), str(repos["resticpy"]), str(src)],
            "failover": [failover_bin(python), "-q", "-c", str(config), "backup", "run", "shop"],
            "floor: the imports failover needs, then restic": [
                python,
                str(floor),
                restic,
                "-r",
                str(repos["floor"]),
                "backup",
                str(src),
            ],
        }
        for command in argv.values():  # the first, full backup: not timed
            subprocess.run(command, env=env, check=True, capture_output=True)
        times: dict[str, list[float]] = {who: [] for who in argv}
        cpu: dict[str, list[float]] = {who: [] for who in argv}
        names = list(argv)
        before = load_line()
        for i in range(rounds):
            for who in names[i % len(names) :] + names[: i % len(names)]:
                os.sync()  # the previous run's writeback must not slow this one down
                wall, used, code, out = run_timed(argv[who], env=env)
                if code != 0:
                    raise SystemExit(f"{who}: exit {code}: {out[-800:]!r}")
                times[who].append(wall)
                cpu[who].append(used)
        after = load_line()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    version = subprocess.run([restic, "version"], capture_output=True, text=True).stdout.split()[1]
    print(
        f"no-change incremental backup of 2,000 files / 200 MiB, restic {version}, "
        f"{rounds} runs each, interleaved"
    )
    print(f"before: {before}; after: {after}")
    print()
    print(
        "| who | wall: median (min–max) | failover / this, wall | CPU: median (min–max) "
        "| failover / this, CPU |"
    )
    print("|---|---|---|---|---|")
    for who, values in times.items():
        mine = who == "failover"
        wall_ratio = "" if mine else ratio_summary(times["failover"], values)
        cpu_ratio = "" if mine else ratio_summary(cpu["failover"], cpu[who])
        print(
            f"| {who} | {ms_summary(values)} | {wall_ratio} | {ms_summary(cpu[who])} | {cpu_ratio} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--incremental", action="store_true")
    args = parser.parse_args()
    restic = shutil.which("restic") or sys.exit("restic is not installed")
    if args.incremental:
        incremental(args.rounds, restic)
        return
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
