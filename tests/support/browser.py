"""Headless Chromium (Debian's `chromium`) to look at pages as a person does: the DOM after
the page rendered (`dump_dom`), a screenshot (`screenshot`), and what the page logged to
its console. No network is needed for a self-contained page; the profile lives in a
temporary directory, and everything that phones home is switched off."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import tempfile
from pathlib import Path

from tests.support import require_binary

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # ignored by git

FLAGS = [
    "--headless",
    "--no-sandbox",  # root, as in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    chromium = require_binary("chromium", "chromium-browser")
    with tempfile.TemporaryDirectory(prefix="fot-chromium-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "HOME": profile},
        )


def console_errors(stderr: str) -> list[str]:
    """The page's own errors as Chromium logs them (not Chromium's harmless dbus noise)."""
    return [
        line
        for line in stderr.splitlines()
        if re.search(r"CONSOLE|Uncaught|Failed to load resource|net::ERR_", line)
    ]


def dump_dom(url: str) -> tuple[str, list[str]]:
    done = _run(["--dump-dom", url])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, console_errors(done.stderr)


def screenshot(url: str, out: Path, width: int = 1100, height: int = 1400) -> tuple[int, int]:
    """A PNG of the page at this window size; returns its size in pixels."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--screenshot={out}", f"--window-size={width},{height}", url])
    assert done.returncode == 0 and out.exists(), done.stderr[-2000:]
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h = struct.unpack(">II", head[16:24])
    return int(w), int(h)
