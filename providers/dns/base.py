"""The DnsProvider interface: read a record set, replace record sets, wait until done.

The base class runs the workflow and owns the error boundary; adapters fill in hooks:

- `_read(key) -> RecordSet | None`: the record set of one name and type, as the provider
  has it (None when there is none).
- `_apply(changes) -> handle`: replace the given record sets (all of them in one
  transaction where `capabilities.atomic` says so) and return whatever `_wait` needs.
- `_wait(handle, deadline)`: block until the provider reports the change done.
- `_translate(exc, action) -> FailoverError | None`: turn an SDK error into one of the
  project's errors (AuthError, NotFound, RateLimited, Unreachable, ProviderError) with a hint.

Any exception that leaves a public method is a FailoverError with a one-line message that
names the provider and never holds a secret.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from failover.dns.names import normalize_name
from failover.errors import FailoverError, ProviderError
from providers.common import SecretScrubber, one_line


def normalize_value(rtype: str, value: str) -> str:
    """How values are compared: canonical IP text for A/AAAA, lower case host names."""
    value = value.strip()
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    if rtype == "CNAME":
        return value.rstrip(".").lower()
    return value


@dataclass(frozen=True, order=True)
class RecordKey:
    """One record set: a name and a type inside a zone. Names are normalized."""

    zone: str
    name: str
    rtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", normalize_name(self.zone))
        object.__setattr__(self, "name", normalize_name(self.name))
        object.__setattr__(self, "rtype", self.rtype.upper())

    def __str__(self) -> str:
        return f"{self.name} {self.rtype}"

    @property
    def relative(self) -> str:
        """The name relative to the zone ('' for the apex)."""
        if self.name == self.zone:
            return ""
        return self.name[: -len(self.zone) - 1]


@dataclass(frozen=True)
class RecordSet:
    """The values (normalized, sorted) and TTL of one record set."""

    key: RecordKey
    values: tuple[str, ...]
    ttl: int | None = None

    def __post_init__(self) -> None:
        values = sorted({normalize_value(self.key.rtype, v) for v in self.values})
        object.__setattr__(self, "values", tuple(values))

    def same_values(self, other: RecordSet | None) -> bool:
        return other is not None and set(self.values) == set(other.values)


@dataclass(frozen=True)
class RecordChange:
    """Replace the record set `old` (None: there is none) with `new`."""

    old: RecordSet | None
    new: RecordSet

    @property
    def key(self) -> RecordKey:
        return self.new.key


@dataclass(frozen=True)
class Capabilities:
    atomic: bool = False
    """All record sets of one `apply()` land together or not at all."""
    conditional: bool = False
    """`apply()` fails instead of overwriting when a record set no longer holds `old`."""
    reports_sync: bool = False
    """`wait()` has something to wait for (the provider propagates changes itself)."""
    multi_value: bool = True
    """A record set may hold several values."""


class ApplyError(FailoverError):
    """Raised by `DnsProvider.apply()` around an adapter's failure.

    `sent` says whether the change may have been applied: False means nothing was changed
    for sure; True means the outcome is open until the records are read back.
    `cause` is the project error the SDK error was turned into; the exit code is its own.
    """

    def __init__(self, cause: FailoverError, *, sent: bool) -> None:
        super().__init__(str(cause.args[0]) if cause.args else str(cause), hint=cause.hint)
        self.cause = cause
        self.sent = sent
        self.exit_code = cause.exit_code


def not_delivered(error: FailoverError) -> FailoverError:
    """Mark an error as certainly not applied: nothing reached the provider (connection
    refused, no credentials), or it was rejected before being looked at (authentication).
    Without the mark, a failure after `_mark_sent()` makes the caller read the records back."""
    error.not_delivered = True  # type: ignore[attr-defined]
    return error


class DnsProvider(SecretScrubber):
    """One configured DNS provider. Subclasses set `kind` and fill in the hooks."""

    kind: ClassVar[str] = "?"
    capabilities: Capabilities = Capabilities()

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self._secrets: list[str] = []
        self._sent = False

    # --- the public workflow ----------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"DNS provider {self.name} ({self.describe()})"

    def describe(self) -> str:
        return self.kind

    def read(self, key: RecordKey) -> RecordSet | None:
        """The record set of `key` as the provider has it, or None when it has none."""
        with self._boundary(f"reading {key}"):
            return self._read(key)

    def read_many(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        with self._boundary("reading records"):
            return self._read_many(keys)

    def apply(self, changes: Sequence[RecordChange]) -> Any:
        """Replace the record sets. Raises ApplyError (with `sent`) on failure."""
        if not changes:
            return None
        for change in changes:
            if not self.capabilities.multi_value and len(change.new.values) > 1:
                raise ProviderError(f"{self.label}: cannot hold several values in {change.key}")
        self._sent = False
        try:
            with self._boundary("changing records"):
                return self._apply(changes)
        except FailoverError as exc:
            sent = self._sent and not getattr(exc, "not_delivered", False)
            raise ApplyError(exc, sent=sent) from None

    def wait(self, handle: Any, deadline: float) -> None:
        """Block until the provider reports the change done, or raise at `deadline`
        (a time.monotonic() value)."""
        with self._boundary("waiting for the change"):
            self._wait(handle, deadline)

    def close(self) -> None:
        """Release clients and connections (the default has none)."""

    def __enter__(self) -> DnsProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- hooks ----------------------------------------------------------------------------

    def _read(self, key: RecordKey) -> RecordSet | None:
        raise NotImplementedError

    def _read_many(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        return {key: self._read(key) for key in keys}

    def _apply(self, changes: Sequence[RecordChange]) -> Any:
        raise NotImplementedError

    def _wait(self, handle: Any, deadline: float) -> None:
        return None

    # --- helpers for adapters ------------------------------------------------------------

    def _mark_sent(self) -> None:
        """Adapters call this right before the request that changes records goes out."""
        self._sent = True

    # the boundary (providers.common): a failed change keeps its wording and its facts
    _unchanged = (ApplyError,)

    def _fallback(self, exc: BaseException, action: str) -> FailoverError:
        return ProviderError(f"{action} failed: {self._scrub(one_line(exc))}")

    def _rebuild(self, old: FailoverError, new: FailoverError) -> FailoverError:
        return _like(old, new)


def _like(old: FailoverError, new: FailoverError) -> FailoverError:
    if getattr(old, "not_delivered", False):
        not_delivered(new)
    return new
