"""How the tool compares DNS names: PURE, and a leaf (it imports nothing), so that both the
config models (failover.config.dns) and the provider adapters (providers.dns) use the same
rule without the adapters loading the config package and pydantic."""

from __future__ import annotations


def normalize_name(name: str) -> str:
    """A DNS name as the tool compares it: lower case, no trailing dot."""
    return name.strip().rstrip(".").lower()
