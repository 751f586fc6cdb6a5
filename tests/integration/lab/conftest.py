"""The lab for its own tests: one whole scenario per module (it takes a few seconds to
start), torn down afterwards. Needs root: fails under CI=true, skips elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import require_binary, require_root
from tests.support.lab import Lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    for binary in ("unshare", "nsenter", "nft", "sshd", "ssh", "restic", "pdns_server"):
        require_binary(binary)
    with Lab() as running:
        yield running
