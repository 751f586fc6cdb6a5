"""Heartbeat targets: a URL of the user's that hears from the agent (after rounds) or from a
backup (start, then success or failure), in the style of the service behind it.

- `plain`: fetch the URL (GET); silence is the alarm;
- `healthchecks` (healthchecks.io and compatible): the URL on success, `/fail` on failure,
  `/start` when a backup begins, `/<exit status>` where there is one, with a short
  message as the request's body;
- `uptime-kuma` (Uptime Kuma push monitors): the URL with `status=up|down`, `msg=` and
  `ping=` (milliseconds) in its query.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from failover.config.base import Model
from failover.config.types import Duration, Secret

PingKind = Literal["plain", "healthchecks", "uptime-kuma"]


def check_ping_url(url: Secret) -> Secret:
    """An http(s) URL with a host and a valid port. The message never shows the URL: it
    usually holds a token."""
    try:
        parts = urlsplit(url.reveal())
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ValueError(
            "not a valid URL (the port is not a number from 1 to 65535?); "
            "the value is not shown: it is a secret"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            "expected an http:// or https:// URL; the value is not shown: it is a secret"
        )
    if not parts.hostname:
        raise ValueError("the URL names no host; the value is not shown: it is a secret")
    if port == 0:
        raise ValueError("the URL's port must be from 1 to 65535")
    return url


class Ping(Model):
    """A URL to signal: after rounds (the heartbeat) or around a backup."""

    url: Secret = Field(
        description="The URL to signal; it usually holds a token: ${ENV_VAR} or file:/path.",
        examples=["${FAILOVER_HEARTBEAT_URL}"],
    )
    kind: PingKind = Field(
        "plain",
        description="How to signal: plain (GET the URL; silence is the alarm), healthchecks "
        "(the URL on success, /fail on failure, /start when a backup begins, /<exit status>), "
        "uptime-kuma (push URL with status=up|down, msg= and ping=).",
    )
    timeout: Duration = Field(
        10.0,
        description="Give up on one ping after this long (never longer than the shortest "
        "probe interval: a ping never holds up the watch).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: Secret) -> Secret:
        return check_ping_url(value)
