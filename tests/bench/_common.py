"""Helpers shared by the benchmarks."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return (
        f"median {statistics.median(values) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {values[-1] * 1000:.0f} ms"
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


CACHE = Path(os.environ.get("FAILOVER_BENCH_CACHE") or Path.home() / ".cache" / "failover-bench")


def peer_venv(name: str, packages: list[str]) -> Path:
    """A virtual environment of the peer's own under the bench cache (not the repository),
    with `packages` installed by pip the first time; returns its bin directory."""
    import subprocess

    venv = CACHE / name
    marker = venv / ".installed"
    wanted = " ".join(packages)
    if not marker.exists() or marker.read_text() != wanted:
        print(f"installing {wanted} into {venv} ...", file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *packages], check=True
        )
        marker.write_text(wanted)
    return venv / "bin"


def compile_project() -> None:
    """Byte-compile the project, as `pip install` does for an installed copy: without it
    (PYTHONDONTWRITEBYTECODE in some environments) every run would compile our sources."""
    import compileall

    for package in ("failover", "providers"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def ratio_summary(tool: list[float], peer: list[float]) -> str:
    """Ratios of interleaved runs (tool / peer, run by run): median (min–max)."""
    pairs = sorted(t / p for t, p in zip(tool, peer, strict=True))
    return f"{statistics.median(pairs):.2f} ({pairs[0]:.2f}–{pairs[-1]:.2f})"


def ms_summary(values: list[float]) -> str:
    """median (min–max) in ms."""
    return (
        f"{statistics.median(values) * 1000:.0f} ms "
        f"({min(values) * 1000:.0f}–{max(values) * 1000:.0f})"
    )


def installed_failover() -> str:
    """The python of an installed copy of this checkout (`pip install .`, as the README's
    Install section does), in a virtual environment under the bench cache: what users run,
    byte-compiled, without the development checkout's editable-install hook on sys.path.
    Dependencies are installed the first time; the project itself again on every call."""
    import subprocess

    venv = CACHE / "failover-installed"
    python = venv / "bin" / "python"
    if not (venv / ".deps").exists():
        print(f"installing failover with its dependencies into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True)
        (venv / ".deps").write_text("ok")
    else:
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--force-reinstall",
                str(REPO),
            ],
            check=True,
        )
    return str(python)


def failover_bin(python: str) -> str:
    """The installed copy's `failover` command (not `python -m failover`, which would put the
    working directory, a checkout, first on sys.path)."""
    return str(Path(python).parent / "failover")


def run_timed(argv: list[str], **kw: Any) -> tuple[float, float, int, bytes]:
    """Run a command: (wall seconds, CPU seconds of it and the children it waited for,
    return code, output). CPU time is what a loaded machine does not inflate much: the
    benchmarks report it beside the wall time."""
    import subprocess
    import time

    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode, out
