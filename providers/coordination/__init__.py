"""Coordination engines behind one small interface (providers.coordination.base.Coordinator).

The registry maps `coordination.engine` to "module:Class"; the module, and with it the
engine's SDK (boto3 for S3), is imported only when a config has a coordination section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from providers.common import load_class

if TYPE_CHECKING:
    from providers.coordination.base import Coordinator

REGISTRY: dict[str, str] = {
    "s3": "providers.coordination.s3:S3Coordinator",
    "etcd": "providers.coordination.etcd:EtcdCoordinator",
}


def make_coordinator(coordination: Any, **kwargs: Any) -> Coordinator:
    """The adapter for the configured engine (the `coordination:` section)."""
    cls: type[Coordinator] = load_class(REGISTRY, coordination.engine, "coordination engine")
    return cls(getattr(coordination, coordination.engine), **kwargs)


__all__ = ["REGISTRY", "make_coordinator"]
