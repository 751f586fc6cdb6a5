"""Config models for provisioning servers: the named compute templates.

`failover migrate SITE --provision TEMPLATE` creates a new server from one of these through
an Apache Libcloud compute driver, waits until it runs, and restores the site onto it.
Credentials are secrets by reference (`${ENV_VAR}` or `file:/path`), never required inline.

The driver name is checked only for its spelling here; whether libcloud has such a driver
is checked when a template is used, so that loading the config never imports libcloud.

This module imports nothing from models.py (models.py imports it), so it keeps its own
small base with the same settings as `models.Model`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from failover.config.base import Model
from failover.config.types import Duration, Secret

# A libcloud Provider name (ec2, digitalocean, digital_ocean, vultr, ...), or
# "package.module:Class" for a driver class outside libcloud's registry.
_DRIVER = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9{][A-Za-z0-9_.{}-]{0,62}$")

ExtraValue = str | int | float | bool | list[str]


class ComputeSsh(Model):
    """How to reach a provisioned server over SSH: the fields of an endpoint's `ssh`, except
    `host`, which is always the new server's address."""

    port: int = Field(22, ge=1, le=65535, description="SSH port.", examples=[22])
    user: str = Field("root", description="SSH user.", examples=["root"])
    key: Path | None = Field(
        None,
        description="Private key file matching the provider's key pair (ssh_key); kept out "
        "of logs and state.",
        examples=["/etc/failover/id_ed25519"],
    )
    known_hosts: Path | None = Field(
        None,
        description="known_hosts file to check the new server's host key against.",
        examples=["/etc/failover/known_hosts"],
    )
    options: list[str] = Field(
        default_factory=list,
        description="Extra `-o` options for ssh, such as ConnectTimeout=5.",
        examples=[["ConnectTimeout=5"]],
    )


class ComputeTemplate(Model):
    """A server to create through a cloud API when a site moves (`migrate --provision`)."""

    driver: str = Field(
        description="The libcloud compute Provider name (libcloud.compute.types.Provider), "
        "case insensitive: ec2, digitalocean (or digital_ocean), linode, vultr, gce, "
        "openstack, ... Or `package.module:Class` for a libcloud NodeDriver class of your "
        "own. Checked when the template is used, not when the config is loaded.",
        examples=["ec2"],
    )
    key: Secret = Field(
        description="The driver's first credential (access key id, API token, user) as a "
        "reference.",
        examples=["${AWS_ACCESS_KEY_ID}"],
    )
    secret: Secret | None = Field(
        None,
        description="The driver's second credential (secret access key), for drivers that "
        "take one, as a reference.",
        examples=["${AWS_SECRET_ACCESS_KEY}"],
    )
    args: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Other keyword arguments for the driver (not secrets): region for ec2; "
        "host, port and secure to talk to another endpoint.",
        examples=[{"region": "eu-central-1"}],
    )
    timeout: Duration = Field(
        30.0, description="Give up on one API request after this long.", examples=["30s"]
    )
    location: str | None = Field(
        None,
        description="Where to create the server: the id or name of one of the driver's "
        "locations (an availability zone for ec2, a region slug for others); the driver's "
        "default when unset.",
        examples=["eu-central-1a"],
    )
    size: str = Field(
        description="The id or name of one of the driver's sizes (instance type, plan).",
        examples=["t3.small"],
    )
    image: str = Field(
        description="The id or name of the image to boot (an AMI id for ec2, a slug or id "
        "for others).",
        examples=["ami-0123456789abcdef0"],
    )
    ssh_key: str | None = Field(
        None,
        description="The provider's name or id of the SSH key to install for ssh.user: the "
        "key pair name for ec2 and openstack, the key id or fingerprint for digitalocean and "
        "vultr. For other drivers put the driver's own argument in `extra`.",
        examples=["failover"],
    )
    extra: dict[str, ExtraValue] = Field(
        default_factory=dict,
        description="More keyword arguments for the driver's create_node, as the driver "
        "names them. For ec2, ex_subnet takes a subnet id (the server gets its private "
        "address from that subnet), and ex_security_group_ids and ex_assign_public_ip are "
        "the usual companions.",
        examples=[{"ex_subnet": "subnet-0123456789abcdef0", "ex_assign_public_ip": True}],
    )
    name: str | None = Field(
        None,
        description="The new server's name; `{site}` is replaced by the site's name. "
        "Defaults to failover-{site}. A re-run of an interrupted migrate finds the server it "
        "created by this name (and, where the driver has tags, by the run's tag).",
        examples=["shop-{site}"],
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags (labels) to put on the server, where the driver supports them "
        "(ec2). The tool adds failover:run and failover:site itself.",
        examples=[{"owner": "ops"}],
    )
    address: Literal["public", "private"] = Field(
        "public",
        description="Which of the new server's addresses becomes the endpoint's address: "
        "public, or private when the agent reaches it inside a VPC or over a VPN.",
        examples=["public"],
    )
    ssh: ComputeSsh = Field(
        default_factory=lambda: ComputeSsh(),
        description="How to reach the new server over SSH (the restore runs through it).",
    )
    boot_timeout: Duration = Field(
        600.0,
        description="How long the new server has to be running with its address.",
        examples=["10m"],
    )
    ssh_timeout: Duration = Field(
        300.0,
        description="How long the new server then has to accept SSH connections.",
        examples=["5m"],
    )
    poll_interval: Duration = Field(
        10.0,
        description="The longest pause between two looks at a booting server (the pauses "
        "start short and grow to this).",
        examples=["10s"],
    )

    @field_validator("key", "secret")
    @classmethod
    def _by_reference(cls, value: Secret | None) -> Secret | None:
        if value is not None and value.source == "inline":
            raise ValueError(
                "credentials must be a reference, not the value itself: ${ENV_VAR} or file:/path"
            )
        return value

    @field_validator("driver")
    @classmethod
    def _driver_name(cls, value: str) -> str:
        if not _DRIVER.match(value):
            raise ValueError(
                f"{value!r} is neither a libcloud compute provider name (ec2, digitalocean, "
                "...) nor package.module:Class"
            )
        return value if ":" in value else value.lower()

    @field_validator("name")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        if value is not None and not _NODE_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a server name: letters, digits, '.', '_', '-' and {{site}}"
            )
        return value

    @field_validator("poll_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    def node_name(self, site: str) -> str:
        """The server's name for `site`."""
        return (self.name or "failover-{site}").replace("{site}", site)


__all__ = ["ComputeSsh", "ComputeTemplate"]
