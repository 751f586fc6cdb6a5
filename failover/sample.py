"""`failover init`: the commented starting config."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from failover.errors import UsageError


def sample_text() -> str:
    return resources.files("failover").joinpath("sample.yaml").read_text(encoding="utf-8")


def write_sample(target: Path, *, force: bool = False) -> None:
    if target.exists() and not force:
        raise UsageError(f"{target} exists already (use --force to overwrite it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(sample_text())
    os.chmod(target, 0o600)  # also when --force replaced a file with looser permissions
