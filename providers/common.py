"""Pieces every provider adapter shares: the lazy registry lookup, walking an SDK
exception's causes, and scrubbing secrets from messages at the boundary."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from failover.errors import FailoverError, ProviderError
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


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 300 characters, with its class name."""
    text = " ".join(str(exc).split()) or "(no detail)"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{exc.__class__.__name__}: {text}"


class SecretScrubber:
    """The base of every adapter (DNS, compute, coordination): the secrets it hands to an
    SDK are registered (`_secret`) and scrubbed (`_scrub`: those, every other known secret,
    and URL credentials, through `failover.scrub.scrub`) from any text that leaves it; and
    its one error boundary (`_boundary`), which turns whatever an SDK raises into a
    FailoverError that names the adapter, with `_translate` as the adapter's hook."""

    # errors say which action failed ("NAME: reading records: ..."), not only where
    _action_in_errors: ClassVar[bool] = False
    # FailoverErrors that leave the boundary as they are (already worded by the base)
    _unchanged: ClassVar[tuple[type[FailoverError], ...]] = ()

    _secrets: list[str]

    @property
    def label(self) -> str:
        """How errors name the adapter ("dns provider NAME", ...)."""
        return "provider"

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

    def _translate(self, exc: BaseException, action: str) -> FailoverError | None:
        """The adapter's reading of an SDK's exception (None: not one it knows)."""
        return None

    def _fallback(self, exc: BaseException, action: str) -> FailoverError:
        return ProviderError(f"{action} failed: {one_line(exc)}")

    def _rebuild(self, old: FailoverError, new: FailoverError) -> FailoverError:
        """`new`, the reworded `old`: an adapter may carry facts over (DNS: not delivered)."""
        return new

    @contextmanager
    def _boundary(self, action: str) -> Iterator[None]:
        prefix = f"{self.label}: {action}: " if self._action_in_errors else f"{self.label}: "
        try:
            yield
        except FailoverError as exc:
            if isinstance(exc, self._unchanged):
                raise
            message = self._scrub(str(exc.args[0]) if exc.args else "")
            if not message.startswith(self.label):
                message = prefix + message
            hint = self._scrub(exc.hint) if exc.hint else None
            raise self._rebuild(exc, type(exc)(message, hint=hint)) from None
        except Exception as exc:
            translated = self._translate(exc, action) or self._fallback(exc, action)
            message = self._scrub(str(translated.args[0]) if translated.args else "")
            hint = self._scrub(translated.hint) if translated.hint else None
            raise self._rebuild(translated, type(translated)(prefix + message, hint=hint)) from None


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
