"""Config models of the `coordination:` section (several watchers deciding together), and
which watcher this machine is.

Several agents run the same config, each in another place; each knows its own name from
`--watcher NAME`, `$FAILOVER_WATCHER`, or `watcher: NAME` in a small local file (by default
`watcher.yaml` beside the config). A watcher with `can_act: false` votes only: it must not
hold DNS, SSH or restic credentials, and the loader checks that it does not
(`held_credentials`). This module imports nothing from models.py (models.py imports it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from failover.config.base import NAME_PATTERN, Model, Name
from failover.config.types import Duration, Secret

WATCHER_ENV = "FAILOVER_WATCHER"
DEFAULT_WATCHER_FILE = "watcher.yaml"


class CoordinationWatcher(Model):
    can_act: bool = Field(
        True,
        description="This watcher may become the leader and carry out failovers (it then "
        "needs the DNS, SSH and restic credentials); false: it only votes, and must hold none.",
    )
    description: str | None = Field(None, description="Free text shown in status (where it runs).")


class S3Coordination(Model):
    """An S3 bucket with conditional writes (If-None-Match / If-Match), under a prefix."""

    bucket: str = Field(description="The bucket (it may be the backups' bucket).", min_length=3)
    prefix: str = Field(
        "failover/coordination/",
        description="Every key the watchers write starts with this (grant them only this).",
    )
    endpoint_url: str | None = Field(
        None,
        description="The S3 endpoint of an S3-compatible service; AWS when unset.",
        examples=["https://s3.eu-central-1.wasabisys.com"],
    )
    region: str = Field("us-east-1", description="The bucket's region.")
    access_key_id: Secret | None = Field(
        None,
        description="Access key id (${ENV_VAR} or file:); the SDK's usual chain when unset.",
    )
    secret_access_key: Secret | None = Field(None, description="Secret access key.")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="How the bucket is named in requests."
    )
    timeout: Duration = Field(5.0, description="Give up on one request after this long.")


class EtcdCoordination(Model):
    """An etcd v3 cluster (3.4 or newer), through its JSON gateway on the client port."""

    endpoints: list[str] = Field(
        min_length=1,
        description="Client URLs of the members; a request goes to the next one when one "
        "does not answer.",
        examples=[["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"]],
    )
    prefix: str = Field("failover/", description="Every key the watchers write starts with this.")
    username: str | None = Field(None, description="etcd user, when the cluster has auth on.")
    password: Secret | None = Field(None, description="That user's password.")
    timeout: Duration = Field(3.0, description="Give up on one request after this long.")

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r}: expected http://HOST:PORT or https://HOST:PORT")
        return [u.rstrip("/") for u in value]


class Coordination(Model):
    """Several watchers in different places decide together; one leader acts."""

    engine: Literal["s3", "etcd"] = Field(description="Where the watchers meet.")
    watchers: dict[Name, CoordinationWatcher] = Field(
        min_length=1,
        description="Every watcher of the group, by name. The quorum counts these, not "
        "those that happen to be reachable.",
    )
    quorum: int | None = Field(
        None,
        ge=1,
        description="How many fresh down verdicts make an endpoint down for the group; "
        "default: a majority of the watchers.",
    )
    max_up: int | None = Field(
        None,
        ge=0,
        description="At most this many fresh up verdicts may exist for the group to call an "
        "endpoint down; default 0 up to 5 watchers, then one more per 5.",
    )
    fresh_rounds: float = Field(
        3,
        gt=1,
        description="A watcher's verdict counts while it advanced within this many of the "
        "site's intervals (measured on the reader's clock or the engine's).",
    )
    lease_ttl: Duration = Field(
        30.0,
        description="The leader's lease: another watcher takes over when it has not been "
        "renewed for this long.",
    )
    lease_margin: Duration | None = Field(
        None,
        description="The leader stops acting this long before its lease could lapse "
        "(measured from before the renewal was sent); default a quarter of the TTL, at "
        "least 1s.",
    )
    watcher_file: Path | None = Field(
        None,
        description="The small local file naming this machine's watcher (`watcher: NAME`); "
        "default watcher.yaml beside the config. --watcher and $FAILOVER_WATCHER win.",
    )
    selftest_writers: int = Field(
        16,
        ge=2,
        le=64,
        description="Concurrent writers in the self-test's race (exactly one may win).",
    )
    s3: S3Coordination | None = Field(None, description="The bucket, with engine: s3.")
    etcd: EtcdCoordination | None = Field(None, description="The cluster, with engine: etcd.")

    @model_validator(mode="after")
    def _consistent(self) -> Coordination:
        if getattr(self, self.engine) is None:
            raise ValueError(f"engine {self.engine} needs its `{self.engine}:` settings")
        other = "etcd" if self.engine == "s3" else "s3"
        if getattr(self, other) is not None:
            raise ValueError(f"`{other}:` is set but the engine is {self.engine}")
        n = len(self.watchers)
        if self.quorum is not None and self.quorum > n:
            raise ValueError(f"quorum {self.quorum} is more than the {n} watcher(s)")
        if self.max_up is not None and self.max_up >= n:
            raise ValueError(f"max_up {self.max_up} must be less than the {n} watcher(s)")
        if not any(w.can_act for w in self.watchers.values()):
            raise ValueError("no watcher has can_act: true, so nobody could fail over")
        if self.margin >= self.lease_ttl:
            raise ValueError("lease_margin must be shorter than lease_ttl")
        return self

    @property
    def quorum_count(self) -> int:
        return self.quorum if self.quorum is not None else len(self.watchers) // 2 + 1

    @property
    def max_up_count(self) -> int:
        if self.max_up is not None:
            return self.max_up
        n = len(self.watchers)
        return 0 if n <= 5 else (n - 1) // 5

    @property
    def margin(self) -> float:
        if self.lease_margin is not None:
            return self.lease_margin
        return max(1.0, self.lease_ttl / 4)


# --- which watcher this machine is ---------------------------------------------------------


@dataclass(frozen=True)
class WatcherIdentity:
    name: str
    can_act: bool
    source: str  # "--watcher", "$FAILOVER_WATCHER" or the local file's path


def watcher_file_path(raw: Mapping[str, Any], base_dir: Path | None) -> Path:
    configured = raw.get("watcher_file")
    path = Path(str(configured)).expanduser() if configured else Path(DEFAULT_WATCHER_FILE)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def resolve_watcher(
    raw: Any,
    base_dir: Path | None,
    explicit: str | None,
    env: Mapping[str, str],
) -> tuple[WatcherIdentity | None, list[str]]:
    """Which configured watcher this machine is, from the raw `coordination:` mapping:
    (identity or None when no name is given anywhere, problems)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("watchers"), dict):
        return None, []  # the model reports a broken section itself
    name, source = explicit, "--watcher"
    if not name and env.get(WATCHER_ENV):
        name, source = env[WATCHER_ENV], f"${WATCHER_ENV}"
    if not name:
        path = watcher_file_path(raw, base_dir)
        name, problem = _read_watcher_file(path)
        if problem:
            return None, [problem]
        source = str(path)
    if not name:
        return None, []
    watchers = raw["watchers"]
    if name not in watchers:
        known = ", ".join(str(w) for w in watchers)
        return None, [f"{source}: watcher {name!r} is not one of coordination.watchers ({known})"]
    entry = watchers[name] if isinstance(watchers[name], dict) else {}
    return WatcherIdentity(str(name), entry.get("can_act", True) is not False, source), []


def _read_watcher_file(path: Path) -> tuple[str | None, str | None]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path}: cannot read the watcher file: {exc.strerror}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        return None, f"{path}:{line}: not valid YAML"
    if not isinstance(data, dict) or set(data) != {"watcher"}:
        return None, f"{path}:1: expected one key, `watcher: NAME`"
    name = str(data["watcher"])
    import re

    if not re.match(NAME_PATTERN, name):
        return None, f"{path}:1: watcher: {name!r} is not a valid name"
    return name, None


# --- a voter-only watcher holds no credentials ----------------------------------------------


def _secrets_under(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Secret]]:
    if isinstance(value, Secret):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_under(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secrets_under(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _secrets_under(item, (*path, i))


def held_credentials(config: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """The credentials to move the site that this machine holds: DNS provider and compute
    secrets, restic passwords and repository keys, readable SSH keys. (path, what)."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    roots: list[tuple[tuple[str | int, ...], Any]] = [
        (("dns_providers",), config.dns_providers),
        (("compute_templates",), config.compute_templates),
    ]
    for site_name, site in config.sites.items():
        roots.append((("sites", site_name, "backup"), site.backup))
    for root, value in roots:
        for path, secret in _secrets_under(value, root):
            if not secret.absent:
                found.append((path, f"{secret.source} is available here"))
    keys: list[tuple[tuple[str | int, ...], Any]] = []
    for site_name, site in config.sites.items():
        for ep_name, endpoint in site.endpoints.items():
            if endpoint.ssh is not None and endpoint.ssh.key is not None:
                keys.append(
                    (("sites", site_name, "endpoints", ep_name, "ssh", "key"), endpoint.ssh.key)
                )
    for name, template in config.compute_templates.items():
        ssh = getattr(template, "ssh", None)
        if ssh is not None and getattr(ssh, "key", None) is not None:
            keys.append((("compute_templates", name, "ssh", "key"), ssh.key))
    for path, key in keys:
        key_path = Path(key).expanduser()
        if key_path.is_file() and os.access(key_path, os.R_OK):
            found.append((path, f"the SSH key {key_path} is readable here"))
    return found


def engine_secrets_missing(coordination: Coordination) -> list[tuple[tuple[str | int, ...], str]]:
    """The engine's own credentials must be there, even on a voter-only watcher."""
    engine = getattr(coordination, coordination.engine)
    return [
        (("coordination", coordination.engine, *path), f"{secret.source} is not available here")
        for path, secret in _secrets_under(engine, ())
        if secret.absent
    ]
