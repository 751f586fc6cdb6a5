"""The lab for its own tests: one whole scenario per module (it takes a few seconds to
start), torn down afterwards. Needs root: fails under CI=true, skips elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.lab import Lab, running_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab()
