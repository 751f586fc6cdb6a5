"""The code stays clean where CI looks: ruff (rules, complexity ceiling 15 and formatting)
and mypy over the tree, `mypy --strict` over the pure modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require
from tests.unit.test_structure import PURE

REPO = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, cwd=REPO, timeout=600)


def _tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)  # the virtual environment's own
    found = str(beside) if beside.exists() else (shutil.which(name) or str(beside))
    require(Path(found).exists(), f"{name} is not installed (the test extras install it)")
    return found


@pytest.mark.parametrize(
    "args",
    [("check", "."), ("format", "--check", ".")],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(args: tuple[str, ...]) -> None:
    proc = _run(_tool("ruff"), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy() -> None:
    proc = _run(sys.executable, "-m", "mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_the_pure_modules() -> None:
    files = [str(Path(*m.split(".")).with_suffix(".py")) for m in PURE]
    proc = _run(sys.executable, "-m", "mypy", "--strict", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
