"""The Coordinator interface: what several watchers need from an engine they share.

Small on purpose, so that an S3 bucket with conditional writes and an etcd cluster can both
be one:

- key-value primitives on JSON documents under the configured prefix: `get`, `get_many`,
  `put` (unconditional), `create` (only if absent), `replace` (only if unchanged since
  `version`), `delete`, `keys`. A conditional write that loses returns None: 412 and, for
  If-Match on a missing key, 404 alike;
- leadership: `campaign` (take the leader's lease when it is free, or say who holds it),
  `renew`, `resign`, and writes fenced by the lease (`create_fenced`, `replace_fenced`);
- `selftest()`: proves that the engine honours all of that, including a race of many
  concurrent writers where exactly one may win.

The base class owns the error boundary: whatever leaves a public method is a FailoverError
(Unreachable, AuthError, NotFound, ProviderError) with one line that names the engine and
never holds a secret. Adapters fill in the `_hooks`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

from failover.coordination.lease import Lease
from failover.errors import FailoverError, ProviderError
from providers.common import SecretScrubber, one_line

MAX_DOCUMENT = 1 << 20  # a coordination document larger than this is refused, not read


def boottime() -> float:
    """The local clock of leases and freshness: monotonic, and counting while the process
    is stopped or the machine suspended."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Item:
    """A document as the engine holds it."""

    key: str  # relative to the prefix
    value: dict[str, Any]
    version: str  # S3: the ETag; etcd: the mod_revision
    age: float | None = None  # seconds since written, by the engine's own clock (None: untold)


@dataclass(frozen=True)
class LeaderInfo:
    holder: str | None  # None: nobody holds the lease
    epoch: int


@dataclass
class SelftestReport:
    engine: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in self.checks],
        }


class NotHonoured(ProviderError):
    """The engine answers, but does not honour conditional writes: coordinating through it
    could let two watchers act at once."""


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def decode(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_DOCUMENT:
        raise ProviderError(f"{what} is larger than {MAX_DOCUMENT} bytes: not a document of ours")
    try:
        value = json.loads(data)
    except ValueError:
        raise ProviderError(f"{what} is not JSON: not a document of ours") from None
    if not isinstance(value, dict):
        raise ProviderError(f"{what} is not a JSON object: not a document of ours")
    return value


class Coordinator(SecretScrubber):
    kind: ClassVar[str] = "?"
    LEADER_KEY: ClassVar[str] = "leader"

    def __init__(self, config: Any, clock: Callable[[], float] = boottime) -> None:
        self.config = config
        self.clock = clock
        self.prefix = config.prefix
        self._secrets: list[str] = []

    # --- naming ---------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"coordination engine {self.kind} ({self.describe()})"

    def describe(self) -> str:
        return self.kind

    # --- key-value primitives -----------------------------------------------------------

    def get(self, key: str) -> Item | None:
        with self._boundary(f"reading {key}"):
            return self._get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Item | None]:
        with self._boundary("reading documents"):
            return self._get_many(keys)

    def put(self, key: str, value: dict[str, Any]) -> Item:
        with self._boundary(f"writing {key}"):
            return self._put(key, value)

    def create(self, key: str, value: dict[str, Any]) -> Item | None:
        """Write `key` only if it does not exist. None: it does (lost)."""
        with self._boundary(f"creating {key}"):
            return self._create(key, value)

    def replace(self, key: str, value: dict[str, Any], version: str) -> Item | None:
        """Write `key` only if it is still at `version`. None: it changed or went (lost)."""
        with self._boundary(f"replacing {key}"):
            return self._replace(key, value, version)

    def delete(self, key: str, version: str | None = None) -> bool:
        with self._boundary(f"deleting {key}"):
            return self._delete(key, version)

    def keys(self, prefix: str) -> list[str]:
        with self._boundary(f"listing {prefix}"):
            return self._keys(prefix)

    # --- leadership -------------------------------------------------------------------------

    def campaign(
        self, me: str, ttl: float, margin: float, memory: dict[str, Any], may_act: bool = True
    ) -> tuple[Lease | None, LeaderInfo]:
        """Take the leader's lease if it is free (and `may_act`), else say who holds it.

        `memory` is the caller's to keep between calls (and across restarts): what the
        engine needs to judge the lease free without a clock of its own."""
        with self._boundary("campaigning for the lease"):
            return self._campaign(me, ttl, margin, memory, may_act)

    def renew(self, lease: Lease) -> Lease | None:
        """Renew the lease; None: it is no longer ours (lapsed, or taken over)."""
        with self._boundary("renewing the lease"):
            return self._renew(lease)

    def resign(self, lease: Lease) -> None:
        with self._boundary("releasing the lease"):
            self._resign(lease)

    def create_fenced(self, lease: Lease, key: str, value: dict[str, Any]) -> Item | None:
        """`create`, only while `lease` is the leader's (atomically where the engine can)."""
        with self._boundary(f"creating {key}"):
            return self._create_fenced(lease, key, value)

    def replace_fenced(
        self, lease: Lease, key: str, value: dict[str, Any], version: str
    ) -> Item | None:
        with self._boundary(f"replacing {key}"):
            return self._replace_fenced(lease, key, value, version)

    def close(self) -> None:
        """Release connections."""

    # --- the self-test ----------------------------------------------------------------------

    def selftest(self, writers: int = 16, rounds: int = 1) -> SelftestReport:
        """Prove that conditional writes are honoured, alone and under a race; the keys it
        writes are removed again. Raises only when the engine cannot be reached.

        Losers of a race may wait for the server's lock (SeaweedFS retries it once a
        second): the self-test's requests get a longer timeout than the rounds' ones."""
        patient = self._clone(
            self.config.model_copy(update={"timeout": max(self.config.timeout, 30.0)})
        )
        patient.prefix = self.prefix
        try:
            return patient._selftest(writers, rounds)
        finally:
            patient.close()

    def _selftest(self, writers: int, rounds: int) -> SelftestReport:
        report = SelftestReport(self.kind)
        started = time.monotonic()
        base = f"selftest/{uuid.uuid4().hex[:12]}"
        written: list[str] = []
        try:
            self._selftest_single(report, base, written)
            for n in range(rounds):
                self._selftest_race(report, f"{base}/race{n}", writers, written)
        finally:
            for key in written:
                try:
                    self.delete(key)
                except FailoverError:
                    pass
            report.seconds = time.monotonic() - started
        return report

    def _selftest_single(self, report: SelftestReport, base: str, written: list[str]) -> None:
        key = f"{base}/one"
        written.append(key)
        first = self.create(key, {"n": 1, "nonce": uuid.uuid4().hex})
        report.checks.append(
            ("create an absent key", first is not None, "created" if first else "refused")
        )
        second = self.create(key, {"n": 2, "nonce": uuid.uuid4().hex})
        report.checks.append(
            (
                "create-if-absent refuses an existing key",
                second is None,
                "refused" if second is None else "overwrote it (If-None-Match ignored)",
            )
        )
        if first is None:
            return
        current = self.replace(key, {"n": 3, "nonce": uuid.uuid4().hex}, first.version)
        report.checks.append(
            (
                "compare-and-swap at the current version",
                current is not None,
                "replaced" if current else "refused",
            )
        )
        stale = self.replace(key, {"n": 4, "nonce": uuid.uuid4().hex}, first.version)
        report.checks.append(
            (
                "compare-and-swap refuses a stale version",
                stale is None,
                "refused" if stale is None else "overwrote it (If-Match ignored)",
            )
        )
        missing = self.replace(f"{base}/missing", {"n": 5}, first.version)
        if missing is not None:
            written.append(f"{base}/missing")
        report.checks.append(
            (
                "compare-and-swap refuses a missing key",
                missing is None,
                "refused" if missing is None else "created it",
            )
        )
        after = self.get(key)
        report.checks.append(
            (
                "the winner's write is what reads return",
                after is not None and after.value.get("n") == 3,
                f"read n={after.value.get('n') if after else None}",
            )
        )

    def _selftest_race(
        self, report: SelftestReport, base: str, writers: int, written: list[str]
    ) -> None:
        key = f"{base}/create"
        written.append(key)
        barrier = threading.Barrier(writers)

        def create(i: int) -> bool:
            barrier.wait(timeout=30)
            return self.create(key, {"writer": i, "nonce": uuid.uuid4().hex}) is not None

        with ThreadPoolExecutor(writers) as pool:
            wins = sum(pool.map(create, range(writers)))
        report.checks.append(
            (
                f"{writers} concurrent create-if-absent: exactly one wins",
                wins == 1,
                f"{wins} won",
            )
        )
        start = self.get(key)
        if start is None:
            return
        barrier = threading.Barrier(writers)

        def swap(i: int) -> bool:
            barrier.wait(timeout=30)
            return (
                self.replace(key, {"swap": i, "nonce": uuid.uuid4().hex}, start.version) is not None
            )

        with ThreadPoolExecutor(writers) as pool:
            wins = sum(pool.map(swap, range(writers)))
        report.checks.append(
            (
                f"{writers} concurrent compare-and-swap: exactly one wins",
                wins == 1,
                f"{wins} won",
            )
        )

    # --- hooks ------------------------------------------------------------------------------

    def _clone(self, config: Any) -> Coordinator:
        return type(self)(config, clock=self.clock)

    def _get(self, key: str) -> Item | None:
        raise NotImplementedError

    def _get_many(self, keys: Sequence[str]) -> dict[str, Item | None]:
        return {key: self._get(key) for key in keys}

    def _put(self, key: str, value: dict[str, Any]) -> Item:
        raise NotImplementedError

    def _create(self, key: str, value: dict[str, Any]) -> Item | None:
        raise NotImplementedError

    def _replace(self, key: str, value: dict[str, Any], version: str) -> Item | None:
        raise NotImplementedError

    def _delete(self, key: str, version: str | None) -> bool:
        raise NotImplementedError

    def _keys(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def _campaign(
        self, me: str, ttl: float, margin: float, memory: dict[str, Any], may_act: bool
    ) -> tuple[Lease | None, LeaderInfo]:
        raise NotImplementedError

    def _renew(self, lease: Lease) -> Lease | None:
        raise NotImplementedError

    def _resign(self, lease: Lease) -> None:
        raise NotImplementedError

    def _create_fenced(self, lease: Lease, key: str, value: dict[str, Any]) -> Item | None:
        raise NotImplementedError

    def _replace_fenced(
        self, lease: Lease, key: str, value: dict[str, Any], version: str
    ) -> Item | None:
        raise NotImplementedError

    # --- the error boundary -------------------------------------------------------------

    _action_in_errors = True

    def _fallback(self, exc: BaseException, action: str) -> FailoverError:
        return ProviderError(one_line(exc))
