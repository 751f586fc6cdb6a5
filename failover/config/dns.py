"""Config models for DNS: the named DNS providers and each site's managed records.

The records named here are the only records the tool ever changes. Credentials are
secrets by reference (`${ENV_VAR}` or `file:/path`), never required inline.

This module imports nothing from models.py (models.py imports it), so it keeps its own
small base with the same settings as `models.Model`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from failover.config.base import NAME_PATTERN, Model
from failover.config.types import Duration, Secret
from failover.dns.names import normalize_name

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")

RECORD_TYPES = ("A", "AAAA", "CNAME")
TSIG_ALGORITHMS = (
    "hmac-sha256",
    "hmac-sha224",
    "hmac-sha384",
    "hmac-sha512",
    "hmac-sha256-128",
    "hmac-sha384-192",
    "hmac-sha512-256",
    "hmac-sha1",
    "hmac-md5",
)


def is_hostname(name: str) -> bool:
    name = name.rstrip(".")
    return bool(name) and len(name) <= 253 and all(_LABEL.match(p) for p in name.split("."))


def check_value(rtype: str, value: str) -> str | None:
    """Why `value` cannot be the data of a `rtype` record, or None when it can."""
    if rtype in ("A", "AAAA"):
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return f"{value!r} is not an IP address"
        if (rtype == "A") != (ip.version == 4):
            return f"{value!r} is not an IPv{4 if rtype == 'A' else 6} address"
        return None
    if rtype == "CNAME":
        return None if is_hostname(value) else f"{value!r} is not a host name"
    return f"record type {rtype} is not managed"


def parse_server(text: str, default_port: int = 53) -> tuple[str, int]:
    """'192.0.2.1', '192.0.2.1:5300', '::1', '[::1]:5300' or a host name -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        return host, int(port_text)
    return text, default_port


def _no_inline(secret: Secret | None, what: str) -> Secret | None:
    if secret is not None and secret.source == "inline":
        raise ValueError(
            f"{what} must be a reference, not the value itself: ${{ENV_VAR}} or file:/path"
        )
    return secret


# --- providers ----------------------------------------------------------------------------


class LibcloudDnsConfig(Model):
    type: Literal["libcloud"] = Field(
        description="Any DNS host that Apache Libcloud has a driver for.", examples=["libcloud"]
    )
    driver: str = Field(
        description="The libcloud DNS Provider name (libcloud.dns.types.Provider), case "
        "insensitive: powerdns, cloudflare, digital_ocean, gandi, linode, vultr, ...",
        examples=["powerdns"],
    )
    key: Secret = Field(
        description="The driver's first credential (API key, token or user) as a reference.",
        examples=["${PDNS_API_KEY}"],
    )
    secret: Secret | None = Field(
        None,
        description="The driver's second credential, for drivers that take one, as a reference.",
        examples=["file:/etc/failover/dns.secret"],
    )
    args: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Other keyword arguments for the driver (not secrets). For PowerDNS: host, "
        "port, secure and api_version (v1 is used unless given).",
        examples=[{"host": "127.0.0.1", "port": 8081, "secure": False, "api_version": "v1"}],
    )
    record_names: Literal["relative", "fqdn", "fqdn."] | None = Field(
        None,
        description="How the driver spells record names: relative to the zone (libcloud's "
        "convention, '' for the apex), fully qualified, or fully qualified with the trailing "
        "dot. Defaults to 'fqdn.' for powerdns and 'relative' for the others.",
        examples=["relative"],
    )
    timeout: Duration = Field(
        30.0, description="Give up on one API request after this long.", examples=["30s"]
    )

    @field_validator("key", "secret")
    @classmethod
    def _by_reference(cls, value: Secret | None) -> Secret | None:
        return _no_inline(value, "credentials")

    @field_validator("driver")
    @classmethod
    def _driver_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", value):
            raise ValueError(f"{value!r} is not a libcloud DNS provider name")
        return value.lower()


class Route53DnsConfig(Model):
    type: Literal["route53"] = Field(description="Amazon Route 53 through boto3.")
    access_key_id: Secret | None = Field(
        None,
        description="AWS access key id as a reference; unset: boto3's usual chain "
        "(environment, shared credentials file, instance role).",
        examples=["${AWS_ACCESS_KEY_ID}"],
    )
    secret_access_key: Secret | None = Field(
        None,
        description="AWS secret access key as a reference (with access_key_id).",
        examples=["${AWS_SECRET_ACCESS_KEY}"],
    )
    session_token: Secret | None = Field(
        None, description="AWS session token for temporary credentials, as a reference."
    )
    profile: str | None = Field(
        None,
        description="A profile of the shared AWS config to use instead of keys.",
        examples=["failover"],
    )
    region: str = Field(
        "us-east-1", description="AWS region for the API client.", examples=["us-east-1"]
    )
    endpoint_url: str | None = Field(
        None,
        description="Another API endpoint (tests use moto's server on loopback).",
        examples=["http://127.0.0.1:5000"],
    )
    hosted_zone_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Hosted zone id per zone name, when the zone name alone is ambiguous "
        "(a public and a private zone of the same name); looked up by name otherwise.",
        examples=[{"example.com": "Z0123456789ABCDEFGHIJ"}],
    )
    max_attempts: int = Field(
        8,
        ge=1,
        le=30,
        description="Attempts per API call when Route 53 throttles (with exponential backoff).",
    )
    timeout: Duration = Field(
        30.0, description="Give up on one API request after this long.", examples=["30s"]
    )

    @field_validator("access_key_id", "secret_access_key", "session_token")
    @classmethod
    def _by_reference(cls, value: Secret | None) -> Secret | None:
        return _no_inline(value, "credentials")

    @model_validator(mode="after")
    def _pairs(self) -> Route53DnsConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        if self.profile and self.access_key_id is not None:
            raise ValueError("give either profile or access keys, not both")
        return self


class Rfc2136DnsConfig(Model):
    type: Literal["rfc2136"] = Field(
        description="Dynamic updates (RFC 2136) signed with TSIG, to your own BIND, Knot or "
        "PowerDNS primary server."
    )
    server: str = Field(
        description="IP address of the primary server that accepts the updates.",
        examples=["192.0.2.53"],
    )
    port: int = Field(53, ge=1, le=65535, description="The server's DNS port.")
    key_name: str | None = Field(
        None,
        description="Name of the TSIG key. Unset: updates go unsigned (only for servers that "
        "allow updates by address; not recommended).",
        examples=["ddns-key"],
    )
    key_secret: Secret | None = Field(
        None,
        description="The TSIG key's base64 secret as a reference.",
        examples=["file:/etc/failover/ddns.key.secret"],
    )
    key_algorithm: Literal[TSIG_ALGORITHMS] = Field(  # type: ignore[valid-type]
        "hmac-sha256", description="The TSIG algorithm.", examples=["hmac-sha256"]
    )
    timeout: Duration = Field(
        10.0, description="Give up on one query or update after this long.", examples=["10s"]
    )

    @field_validator("server")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None

    @field_validator("key_secret")
    @classmethod
    def _by_reference(cls, value: Secret | None) -> Secret | None:
        return _no_inline(value, "key_secret")

    @model_validator(mode="after")
    def _pairs(self) -> Rfc2136DnsConfig:
        if (self.key_name is None) != (self.key_secret is None):
            raise ValueError("give both key_name and key_secret, or neither")
        return self


_PROVIDER_TYPES: dict[str, type[Model]] = {
    "libcloud": LibcloudDnsConfig,
    "route53": Route53DnsConfig,
    "rfc2136": Rfc2136DnsConfig,
}


def _provider_by_type(value: Any, info: ValidationInfo) -> Model:
    """Validate a provider entry as the model its `type` names. (A discriminated union would
    put the tag into error locations, dns_providers.x.rfc2136.port; this keeps them true to
    the file: dns_providers.x.port.)"""
    if isinstance(value, Model):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("dns_provider", "expected a mapping with a `type`")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in _PROVIDER_TYPES:
        raise located_error(
            ("type",) if "type" in value else (),
            f"expected one of {', '.join(_PROVIDER_TYPES)}"
            + (f", got {kind!r}" if "type" in value else " in `type`"),
        )
    return _PROVIDER_TYPES[kind].model_validate(value, context=info.context)


DnsProviderConfig = Annotated[
    LibcloudDnsConfig | Route53DnsConfig | Rfc2136DnsConfig,
    PlainValidator(
        _provider_by_type,
        json_schema_input_type=Annotated[
            LibcloudDnsConfig | Route53DnsConfig | Rfc2136DnsConfig,
            Field(discriminator="type"),
        ],
    ),
]


# --- a site's records -----------------------------------------------------------------------


class DnsRecord(Model):
    name: str = Field(
        description="The record's fully qualified name, inside the zone.",
        examples=["shop.example.com"],
    )
    type: Literal["A", "AAAA", "CNAME"] = Field(
        description="Record type. Each endpoint gives the value: A/AAAA its address (or its "
        "dns_values), CNAME its dns_values.CNAME.",
        examples=["A"],
    )
    ttl: int = Field(
        60,
        ge=1,
        le=86400,
        description="TTL written with the record, in seconds: short, so users follow a "
        "failover quickly.",
        examples=[60],
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = normalize_name(value)
        if not is_hostname(value):
            raise ValueError(f"{value!r} is not a DNS name")
        return value


class SiteDns(Model):
    provider: str = Field(
        description="The name of an entry of dns_providers.",
        examples=["pdns"],
        pattern=NAME_PATTERN,
    )
    zone: str = Field(description="The zone the records live in.", examples=["example.com"])
    records: list[DnsRecord] = Field(
        min_length=1,
        description="The records this site owns; switching points all of them at one endpoint.",
        examples=[[{"name": "shop.example.com", "type": "A", "ttl": 60}]],
    )
    nameservers: list[str] | None = Field(
        None,
        description="Authoritative servers to verify against, as address[:port]; unset: the "
        "zone's NS records, looked up through the system resolver.",
        examples=[["127.0.0.1:5300"]],
    )
    resolvers: list[str] = Field(
        default_factory=list,
        description="Recursive resolvers to ask as well after a switch (informational: their "
        "caches follow only when the old TTL has passed).",
        examples=[["192.0.2.1"]],
    )
    max_ttl: int = Field(
        300,
        ge=1,
        description="status warns when a managed record's TTL at the provider is longer than "
        "this: a long TTL keeps users on a dead server after a failover.",
        examples=[300],
    )
    verify_deadline: Duration = Field(
        60.0,
        description="After a change, wait this long at most for every authoritative server to "
        "serve the new values.",
        examples=["60s"],
    )

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        value = normalize_name(value)
        if not is_hostname(value):
            raise ValueError(f"{value!r} is not a DNS zone name")
        return value

    @field_validator("nameservers", "resolvers")
    @classmethod
    def _servers(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            try:
                host, port = parse_server(item)
            except ValueError:
                raise ValueError(f"{item!r}: expected address or address:port") from None
            if not 1 <= port <= 65535:
                raise ValueError(f"{item!r}: port out of range")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                if not is_hostname(host):
                    raise ValueError(f"{item!r} is neither an address nor a host name") from None
        return value

    @model_validator(mode="after")
    def _records(self) -> SiteDns:
        seen: set[tuple[str, str]] = set()
        names: dict[str, set[str]] = {}
        for i, record in enumerate(self.records):
            if record.name != self.zone and not record.name.endswith("." + self.zone):
                raise located_error(
                    ("records", i, "name"), f"{record.name} is not inside the zone {self.zone}"
                )
            key = (record.name, record.type)
            if key in seen:
                raise located_error(("records", i), f"{record.name} {record.type} is listed twice")
            seen.add(key)
            names.setdefault(record.name, set()).add(record.type)
            if record.type == "CNAME" and record.name == self.zone:
                raise located_error(("records", i, "type"), "a CNAME cannot stand at the zone apex")
        for i, record in enumerate(self.records):
            types = names[record.name]
            if "CNAME" in types and len(types) > 1:
                raise located_error(
                    ("records", i),
                    f"{record.name}: a CNAME cannot share its name with other records",
                )
        return self


__all__ = [
    "RECORD_TYPES",
    "DnsProviderConfig",
    "DnsRecord",
    "LibcloudDnsConfig",
    "Rfc2136DnsConfig",
    "Route53DnsConfig",
    "SiteDns",
    "check_value",
    "parse_server",
]


def located_error(loc: tuple[str | int, ...], message: str) -> ValidationError:
    """A validation error at `loc` below the validated value, so that the config error
    names the exact key and its line (raised from a validator, pydantic prefixes the loc)."""
    return ValidationError.from_exception_data(
        "config",
        [InitErrorDetails(type=PydanticCustomError("dns", message), loc=loc, input=None)],
    )
