"""Pieces every provider adapter shares: the lazy registry lookup, walking an SDK
exception's causes, and scrubbing secrets from messages at the boundary."""

from __future__ import annotations

import importlib
from typing import Any

from failover.errors import ProviderError
from failover.scrub import register_secret, scrub


def load_class(registry: dict[str, str], kind: str, what: str) -> Any:
    """The class registered as "module:Class" for `kind`, importing its module (and the
    SDK it needs) only now."""
    try:
        target = registry[kind]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise ProviderError(f"unknown {what} {kind!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProviderError(
            f"the {kind} {what.split(' ')[0]} provider cannot be loaded: {exc}",
            hint="install the project's dependencies (pip install failover)",
        ) from None
    return getattr(module, class_name)


def exception_chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it (cause, context, or an exception wrapped in its args)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt
    return seen


def connection_refused(exc: BaseException) -> bool:
    return any(
        isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e)
        for e in exception_chain(exc)
    )


class SecretScrubber:
    """Adapters register the secrets they hand to an SDK; `_scrub` removes them (and every
    other known secret, and URL credentials: `failover.scrub.scrub`) from any text that
    leaves the adapter (error messages, hints)."""

    _secrets: list[str]

    def _secret(self, value: str) -> str:
        """Register a secret so that it is scrubbed from any error message."""
        if not hasattr(self, "_secrets"):
            self._secrets = []
        if len(value) >= 4:  # scrubbing shorter strings would garble every message
            self._secrets.append(value)
            register_secret(value)
        return value

    def _scrub(self, text: str) -> str:
        return scrub(text, getattr(self, "_secrets", []))


def libcloud_driver(
    adapter: SecretScrubber, cls: Any, driver_name: str, config: Any, kwargs: dict[str, Any]
) -> Any:
    """Instantiate a libcloud driver class (DNS or compute) from an adapter's config: the
    key and secret registered for scrubbing, the config's timeout unless `kwargs` sets
    one, and argument errors turned into one clear line."""
    kwargs.setdefault("timeout", config.timeout)
    key = adapter._secret(config.key.reveal())
    if config.secret is not None:
        kwargs["secret"] = adapter._secret(config.secret.reveal())
    try:
        return cls(key, **kwargs)
    except TypeError as exc:
        raise ProviderError(
            f"the libcloud {driver_name} driver does not take these arguments: "
            f"{adapter._scrub(str(exc))}",
            hint="check `args` against the driver's documentation",
        ) from None
    except ValueError as exc:  # e.g. ec2's "Invalid region"
        raise ProviderError(
            f"the libcloud {driver_name} driver refused its arguments: {adapter._scrub(str(exc))}",
            hint="check `args` (region, host, port)",
        ) from None
