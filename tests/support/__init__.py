"""Helpers shared by the tests: free ports, required binaries, process management.

A test that needs a server that is missing fails under CI=true; outside CI it skips with
the reason printed (see `require`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Never let boto3, moto or restic's S3 backend reach for the cloud metadata address.
TEST_AWS_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def require(condition: bool, reason: str) -> None:
    """Fail under CI, skip (with the reason) elsewhere, when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite under CI: {reason}")
    pytest.skip(reason)


def require_binary(*names: str) -> str:
    """The path of the first binary found; fails under CI / skips elsewhere when none is."""
    for name in names:
        found = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
        )
        if found:
            return found
    require(False, f"{' or '.join(names)} is not installed (tests/setup.sh installs it)")
    raise AssertionError("unreachable")


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces, nftables)")


def free_port(host: str = "127.0.0.1", also_plus: int | None = None) -> int:
    """A TCP port that is free now on `host` (and, if asked, port+also_plus free too)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if also_plus is None:
            return port
        if port + also_plus <= 65535 and _port_free(host, port + also_plus):
            return port
    raise RuntimeError("no free port found")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    def connects() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    wait_for(connects, timeout, f"{host}:{port} to accept connections")


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path
