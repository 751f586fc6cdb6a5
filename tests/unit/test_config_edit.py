"""`migrate --write-config`: the endpoint block is added, comments and layout kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover.config.edit import add_endpoint, render_block
from failover.config.load import parse_config
from failover.errors import UsageError

TEXT = """\
# my failover config
sites:
  shop:
    hostname: shop.test   # the public name
    endpoints:
      primary: {address: 192.0.2.1}   # old VPS
    checks:
      - {type: tcp, port: 22}
"""


def test_add_endpoint_keeps_comments_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(TEXT)
    path.chmod(0o600)
    block = {"address": "192.0.2.9", "ssh": {"user": "root", "port": 22}}
    add_endpoint(path, "shop", "new", block)
    text = path.read_text()
    assert "# my failover config" in text and "# the public name" in text
    assert "# old VPS" in text
    config = parse_config(text, str(path)).config
    assert config.sites["shop"].endpoints["new"].address == "192.0.2.9"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "address: 192.0.2.9" in render_block("new", block)


def test_add_endpoint_refuses_duplicates_and_invalid_results(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(TEXT)
    with pytest.raises(UsageError, match="already has primary"):
        add_endpoint(path, "shop", "primary", {"address": "192.0.2.9"})
    with pytest.raises(UsageError, match="would not be valid"):
        add_endpoint(path, "shop", "bad", {"address": "not-an-ip"})
    assert path.read_text() == TEXT
