"""DNS providers behind one small interface (providers.dns.base.DnsProvider).

The registry maps a provider type (the `type:` of an entry of `dns_providers`) to
"module:Class"; the module, and with it the provider's SDK, is imported only when a
site uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from providers.common import load_class

if TYPE_CHECKING:
    from providers.dns.base import DnsProvider

REGISTRY: dict[str, str] = {
    "libcloud": "providers.dns.libcloud:LibcloudDnsProvider",
    "route53": "providers.dns.route53:Route53DnsProvider",
    "rfc2136": "providers.dns.rfc2136:Rfc2136DnsProvider",
}


def provider_class(kind: str) -> type[DnsProvider]:
    """The adapter class for a provider type, importing its module (and SDK) now."""
    cls: type[DnsProvider] = load_class(REGISTRY, kind, "DNS provider type")
    return cls


def make_provider(name: str, config: Any) -> DnsProvider:
    """An adapter for the configured provider `name` (an entry of dns_providers)."""
    return provider_class(config.type)(name, config)


__all__ = ["REGISTRY", "make_provider", "provider_class"]
