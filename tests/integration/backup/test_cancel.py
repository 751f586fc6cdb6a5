"""A restic command run inside `cancel_on(event)` is interrupted once the event is set (a
drill that gives way to a real failover stops its restore at once); outside the scope, or
before the event, nothing changes. Real restic, a local repository."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from failover.backup.restic import Restic, cancel_on
from failover.backup.restic_parse import ResticError

pytestmark = pytest.mark.integration


class SlowSink:
    """A reader slower than restic: sets `event` at its first chunk."""

    def __init__(self, event: threading.Event | None = None, delay: float = 0.0) -> None:
        self.event, self.delay, self.size = event, delay, 0

    def write(self, data: bytes) -> int:
        if self.event is not None:
            self.event.set()
        time.sleep(self.delay)
        self.size += len(data)
        return len(data)


def test_a_cancelled_restic_command_is_interrupted(tmp_path: Path, restic_bin: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(8 << 20))
    restic = Restic(
        str(tmp_path / "repo"), "pw", binary=restic_bin, cache_dir=str(tmp_path / "cache")
    )
    restic.init()
    restic.backup([str(data)])
    snapshot = restic.snapshots()[0].id

    whole = SlowSink()
    with cancel_on(threading.Event()):  # never set: the command runs to its end
        restic.dump(snapshot, str(data / "big.bin"), whole)  # type: ignore[arg-type]
    assert whole.size == 8 << 20

    event = threading.Event()
    sink = SlowSink(event, delay=0.5)  # 8 chunks of 1 MiB would take 4 s
    with cancel_on(event), pytest.raises(ResticError) as raised:
        restic.dump(snapshot, str(data / "big.bin"), sink)  # type: ignore[arg-type]
    assert raised.value.kind == "interrupted"
    assert "called off" in str(raised.value)
    assert sink.size < 8 << 20  # stopped part way
