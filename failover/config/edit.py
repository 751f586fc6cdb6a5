"""Changing the user's config file on request (`migrate --write-config`), keeping its
comments, order and layout (ruamel.yaml round trip). Never done silently: the caller shows
the block first, and the file is validated before and after, then replaced atomically."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from failover.errors import ConfigError, UsageError


def add_endpoint(path: Path, site: str, name: str, block: dict[str, Any]) -> str:
    """Add `sites.<site>.endpoints.<name>` to the file at `path`; returns the new text."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode: comments and layout survive
    yaml.preserve_quotes = True
    text = path.read_text(encoding="utf-8")
    data = yaml.load(text)
    try:
        endpoints = data["sites"][site]["endpoints"]
    except (KeyError, TypeError):
        raise UsageError(f"{path}: no sites.{site}.endpoints mapping to add {name} to") from None
    if name in endpoints:
        raise UsageError(f"{path}: sites.{site}.endpoints already has {name}")
    endpoints[name] = block
    out = io.StringIO()
    yaml.dump(data, out)
    new_text = out.getvalue()
    from failover.config.load import parse_config

    try:
        parse_config(new_text, str(path), base_dir=path.parent.resolve())
    except ConfigError as exc:
        raise UsageError(
            f"{path}: the edited config would not be valid: {exc.problems[0]}"
        ) from None
    _replace(path, new_text)
    return new_text


def render_block(name: str, block: dict[str, Any]) -> str:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump({name: block}, out)
    return out.getvalue()


def _replace(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
