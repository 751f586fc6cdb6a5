"""Fixtures for the DNS tests: one real server per adapter, and config files that use it.

`backend` is parametrized over the three adapters (libcloud+PowerDNS, RFC 2136+BIND,
Route 53+moto); every test that takes it runs once against each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.config.load import LoadedConfig, parse_config
from tests.support.dns_servers import BindServer, MotoServer, PowerDnsServer, aws_env

PRIMARY = {"address": "192.0.2.10", "dns_values": {"AAAA": "2001:db8::10"}}
STANDBY = {"address": "198.51.100.20", "dns_values": {"AAAA": "2001:db8::20"}}
RECORDS = [
    {"name": "shop.example.com", "type": "A", "ttl": 60},
    {"name": "www.example.com", "type": "A", "ttl": 60},
    {"name": "shop.example.com", "type": "AAAA", "ttl": 60},
]


@dataclass
class Backend:
    """One adapter with its running server, and what a config file needs to use it."""

    kind: str  # libcloud, rfc2136, route53
    server: Any
    provider: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def nameserver(self) -> str:
        return str(self.server.nameserver)

    def config(
        self,
        tmp_path: Path,
        *,
        provider: dict[str, Any] | None = None,
        records: list[dict[str, Any]] | None = None,
        site: dict[str, Any] | None = None,
        **dns: Any,
    ) -> dict[str, Any]:
        site_dns = {
            "provider": "main",
            "zone": "example.com",
            "records": RECORDS if records is None else records,
            "nameservers": [self.nameserver],
            "verify_deadline": "10s",
            **dns,
        }
        return {
            "state": str(tmp_path / "state.db"),
            "dns_providers": {"main": provider or self.provider},
            "sites": {
                "shop": {
                    "hostname": "shop.example.com",
                    "endpoints": {"primary": PRIMARY, "standby": STANDBY},
                    "checks": [{"type": "tcp", "port": 80}],
                    "dns": site_dns,
                    **(site or {}),
                }
            },
        }

    def write(self, tmp_path: Path, data: dict[str, Any] | None = None, **kw: Any) -> Path:
        path = tmp_path / "failover.yaml"
        path.write_text(yaml.safe_dump(data or self.config(tmp_path, **kw), sort_keys=False))
        path.chmod(0o600)
        return path

    def load(self, tmp_path: Path, data: dict[str, Any] | None = None, **kw: Any) -> LoadedConfig:
        path = self.write(tmp_path, data, **kw)
        env = {**os.environ, **self.env}
        return parse_config(path.read_text(), str(path), base_dir=tmp_path, env=env)

    def subprocess_env(self) -> dict[str, str]:
        env = aws_env()
        env.update(self.env)
        env.pop("FAILOVER_CONFIG", None)
        return env


def make_backend(kind: str, tmp_path: Path) -> Iterator[Backend]:
    if kind == "libcloud":
        with PowerDnsServer() as pdns:
            yield Backend(
                kind, pdns, pdns.provider_config("${PDNS_API_KEY}"), {"PDNS_API_KEY": pdns.api_key}
            )
    elif kind == "rfc2136":
        with BindServer() as bind:
            secret = bind.write_secret(tmp_path / "ddns.secret")
            yield Backend(kind, bind, bind.provider_config(f"file:{secret}"))
    elif kind == "route53":
        with MotoServer() as moto:
            yield Backend(kind, moto, moto.provider_config())
    else:  # pragma: no cover
        raise ValueError(kind)


@pytest.fixture(params=["libcloud", "rfc2136", "route53"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, tmp_path)


@pytest.fixture
def pdns_backend(tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend("libcloud", tmp_path)


@pytest.fixture
def bind_backend(tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend("rfc2136", tmp_path)


@pytest.fixture
def moto_backend(tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend("route53", tmp_path)
