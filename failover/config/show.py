"""Config models of what the tool shows outside itself: Prometheus metrics (`metrics:`) and
the public status page in an object store (`status_page:`).

Kept apart from models.py so that the show area owns its keys; models.py imports these
(this module imports nothing from models.py: no import cycle).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from failover.config.base import Model, Name
from failover.config.types import Duration, Secret

_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")
_BUCKET_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9464", "[::1]:9464", ":9464" (every address) -> (host, port)."""
    m = _LISTEN.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not HOST:PORT (such as 127.0.0.1:9464 or [::1]:9464)")
    host = m.group("v6") or m.group("host") or ""
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    if host and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (or localhost)") from None
    return host, port


class MetricsConfig(Model):
    """Prometheus metrics, named after blackbox_exporter's where they mean the same."""

    listen: str | None = Field(
        None,
        description="Serve /metrics on this address while `failover agent` runs (HOST:PORT; "
        "keep it on loopback or a private interface: the page is not authenticated). "
        "Read at the agent's start: a change needs a restart.",
        examples=["127.0.0.1:9464"],
    )
    textfile: Path | None = Field(
        None,
        description="Write the same metrics to this file after every round, atomically, for "
        "node_exporter's textfile collector (the way to get metrics from `failover check` "
        "under cron). Relative paths are relative to the config file.",
        examples=["/var/lib/node_exporter/textfile_collector/failover.prom"],
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @field_validator("textfile")
    @classmethod
    def _prom(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix != ".prom":
            raise ValueError("node_exporter reads only files ending in .prom")
        return value

    @model_validator(mode="after")
    def _something(self) -> MetricsConfig:
        if self.listen is None and self.textfile is None:
            raise ValueError("set listen, textfile or both (or remove `metrics`)")
        return self

    @property
    def address(self) -> tuple[str, int] | None:
        return parse_listen(self.listen) if self.listen else None


class StatusPageConfig(Model):
    """A static status page (HTML and status.json per site) published to an S3-compatible
    bucket at another provider, so that it stays up when your servers are not."""

    bucket: str = Field(
        description="Where the page goes: s3://BUCKET/PREFIX. The objects are "
        "PREFIX/index.html, PREFIX/SITE/index.html and PREFIX/SITE/status.json.",
        examples=["s3://status-example-com/"],
    )
    endpoint: str | None = Field(
        None,
        description="The S3 API's URL for a store other than AWS (Wasabi, Backblaze B2, "
        "Scaleway, MinIO, ...); AWS when unset.",
        examples=["https://s3.eu-central-2.wasabisys.com"],
    )
    region: str = Field("us-east-1", description="The bucket's region.")
    access_key_id: Secret | None = Field(
        None,
        description="S3 access key: ${ENV_VAR} or file:/path (boto3's own lookup when unset).",
        examples=["${STATUS_S3_KEY}"],
    )
    secret_access_key: Secret | None = Field(
        None,
        description="S3 secret key: ${ENV_VAR} or file:/path.",
        examples=["${STATUS_S3_SECRET}"],
    )
    addressing: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="S3 addressing style: path (endpoint/bucket/key) suits most self-hosted "
        "stores; virtual (bucket.endpoint/key) is AWS's.",
    )
    acl: Literal["public-read"] | None = Field(
        None,
        description="A canned ACL to put on each object, for stores that make objects public "
        "that way; unset: the bucket's policy (or website hosting) makes them readable.",
    )
    public_url: str | None = Field(
        None,
        description="The address your users open (the bucket's website or a CDN in front "
        "of it); shown by `failover status-page` and used for the page's own links.",
        examples=["https://status.example.com/"],
    )
    title: str = Field(
        "Service status", description="The page's title.", examples=["Example Shop status"]
    )
    sites: list[Name] | None = Field(
        None, description="Which sites appear on the page; all when unset."
    )
    every: Duration = Field(
        300.0,
        description="Publish at least this often (and whenever something changes), so the "
        "page's 'updated' time shows the watcher is alive.",
        examples=["5m"],
    )
    days: int = Field(90, ge=7, le=365, description="Days of uptime history shown.")
    timeout: Duration = Field(20.0, description="Give up one upload after this long.")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET_URL.match(value):
            raise ValueError(
                f"{value!r} is not s3://BUCKET or s3://BUCKET/PREFIX (lower-case bucket name)"
            )
        return value

    @field_validator("endpoint", "public_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _keys(self) -> StatusPageConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        if self.every < 30:
            raise ValueError("every must be at least 30s")
        return self

    @property
    def bucket_name(self) -> str:
        m = _BUCKET_URL.match(self.bucket)
        assert m
        return m.group("bucket")

    @property
    def prefix(self) -> str:
        """The key prefix, '' or ending in '/'."""
        m = _BUCKET_URL.match(self.bucket)
        assert m
        prefix = (m.group("prefix") or "").strip("/")
        return prefix + "/" if prefix else ""


__all__ = ["MetricsConfig", "StatusPageConfig", "parse_listen"]
