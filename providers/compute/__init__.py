"""Compute providers behind one small interface (providers.compute.base.ComputeProvider).

The registry maps a provider kind to "module:Class"; the module, and with it the
provider's SDK, is imported only when a template is used. Every compute template goes
through libcloud today; the registry keeps the door open for an SDK of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from providers.common import load_class

if TYPE_CHECKING:
    from providers.compute.base import ComputeProvider

REGISTRY: dict[str, str] = {
    "libcloud": "providers.compute.libcloud:LibcloudComputeProvider",
}


def provider_class(kind: str) -> type[ComputeProvider]:
    """The adapter class for a provider kind, importing its module (and SDK) now."""
    cls: type[ComputeProvider] = load_class(REGISTRY, kind, "compute provider kind")
    return cls


def make_provider(name: str, template: Any, kind: str = "libcloud") -> ComputeProvider:
    """An adapter for the compute template `name` (an entry of compute_templates)."""
    return provider_class(kind)(name, template)


__all__ = ["REGISTRY", "make_provider", "provider_class"]
