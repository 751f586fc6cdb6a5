"""Progress of restic on stderr (cli/backup.py): on a terminal one updating line that is
cleared before any log line (the log line neither lands on it nor is erased with it);
without a terminal no lone `0.0%` line, a line only once there is something to say."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator

import pytest

from failover.cli.backup import _Progress
from failover.logs import get_logger, setup_logging


@pytest.fixture
def terminal() -> Iterator[tuple[int, io.TextIOWrapper]]:
    """A real pseudo-terminal: (the master end to read, the slave end as a text stream)."""
    master, slave = os.openpty()
    stream = io.TextIOWrapper(os.fdopen(slave, "wb", buffering=0), write_through=True)
    yield master, stream
    stream.close()
    os.close(master)
    setup_logging("text", logging.INFO)


def _read(master: int) -> str:
    os.set_blocking(master, False)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out.decode()


STATUS = {
    "percent_done": 0.42,
    "bytes_done": 42 * 1024 * 1024,
    "total_bytes": 100 * 1024 * 1024,
    "files_done": 7,
}


def test_on_a_terminal_a_log_line_clears_the_progress_line_first(
    terminal: tuple[int, io.TextIOWrapper], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, stream = terminal
    monkeypatch.setattr(sys, "stderr", stream)  # here: pytest's capture sets it per test
    setup_logging("text", logging.INFO)
    progress = _Progress("shop")
    assert progress.tty
    progress("files", STATUS)
    get_logger("backup").error("backup failed: the repository is gone")
    progress.end()
    written = _read(master)
    line_at = written.index("shop files:  42.0%")
    log_at = written.index("backup failed: the repository is gone")
    cleared = written.index("\r\x1b[2K", line_at)
    assert line_at < cleared < log_at
    assert "\r\x1b[2K" not in written[log_at:]  # the log line is not erased afterwards


def test_without_a_terminal_no_lone_zero_percent(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    progress = _Progress("shop")
    assert not progress.tty
    progress("files", {"percent_done": 0, "bytes_done": 0, "total_bytes": 0})
    progress("files", STATUS)  # a quick backup: over before there is anything to show
    progress.end()
    assert stream.getvalue() == ""
    slow = _Progress("shop")
    slow.last -= _Progress.FIRST  # FIRST seconds into a long backup
    slow("files", {"percent_done": 0, "bytes_done": 0, "total_bytes": 0})  # still scanning
    assert stream.getvalue() == ""
    slow("files", STATUS)
    slow("files", STATUS)  # the next one only EVERY seconds later
    slow.end()
    assert stream.getvalue().count("\n") == 1 and "42.0%" in stream.getvalue()
