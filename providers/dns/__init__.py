"""DNS providers behind one small interface (providers.dns.base.DnsProvider).

The registry maps a provider type (the `type:` of an entry of `dns_providers`) to
"module:Class"; the module, and with it the provider's SDK, is imported only when a
site uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from failover.errors import ProviderError

if TYPE_CHECKING:
    from providers.dns.base import DnsProvider

REGISTRY: dict[str, str] = {
    "libcloud": "providers.dns.libcloud:LibcloudDnsProvider",
    "route53": "providers.dns.route53:Route53DnsProvider",
    "rfc2136": "providers.dns.rfc2136:Rfc2136DnsProvider",
}


def provider_class(kind: str) -> type[DnsProvider]:
    """The adapter class for a provider type, importing its module (and SDK) now."""
    try:
        target = REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ProviderError(f"unknown DNS provider type {kind!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProviderError(
            f"the {kind} DNS provider cannot be loaded: {exc}",
            hint="install the project's dependencies (pip install failover)",
        ) from None
    cls: type[DnsProvider] = getattr(module, class_name)
    return cls


def make_provider(name: str, config: Any) -> DnsProvider:
    """An adapter for the configured provider `name` (an entry of dns_providers)."""
    return provider_class(config.type)(name, config)


__all__ = ["REGISTRY", "make_provider", "provider_class"]
