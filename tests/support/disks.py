"""Real disk trouble for tests: a small tmpfs mounted in a temporary directory (as root),
filled to the last block or remounted read-only, unmounted afterwards."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import require, require_root


@contextmanager
def small_disk(size: str = "1m") -> Iterator[Path]:
    require_root()
    require(shutil.which("mount") is not None, "mount is needed for a small file system")
    where = Path(tempfile.mkdtemp(prefix="failover-disk-"))
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    require(proc.returncode == 0, f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        shutil.rmtree(where, ignore_errors=True)


def fill(directory: Path) -> Path:
    """Fill the file system holding `directory` to the last block; the filler's path."""
    filler = directory / f"filler-{len(list(directory.iterdir()))}"
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:  # no space left: as intended
        pass
    return filler


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
