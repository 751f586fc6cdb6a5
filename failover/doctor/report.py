"""The findings of `failover doctor` and what they add up to. Pure.

A finding is ok (True), failed (False) or skipped (None: nothing to check, such as the
clock when no endpoint speaks HTTP); the exit code is 0 when nothing failed, else 1.
The clock is compared with the HTTP `Date` header of the endpoints (the servers the
tool probes anyway; no NTP server to configure, and nothing but the endpoints to reach):
the median offset over those that answered, at one-second resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CLOCK_LIMIT = 5.0  # seconds of offset that fail the clock check (TLS, restic locks, logs)


@dataclass(frozen=True)
class Finding:
    check: (
        str  # restic, repository, ssh, sudo, dns, records, nameserver, canary, state, clock, notify
    )
    target: str  # what was checked: local, shop/primary, ns1.example.net:53, ...
    ok: bool | None  # None: skipped
    detail: str
    hint: str | None = None

    @property
    def mark(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]

    def line(self, width: int = 10) -> str:
        hint = f" (hint: {self.hint})" if self.hint and self.ok is not True else ""
        return f"{self.mark:<4} {self.check:<{width}} {self.target}: {self.detail}{hint}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "target": self.target,
            "ok": self.ok,
            "detail": self.detail,
            "hint": self.hint,
        }


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.ok is False for f in findings) else 0


def summary(findings: Sequence[Finding]) -> str:
    failed = sum(1 for f in findings if f.ok is False)
    passed = sum(1 for f in findings if f.ok is True)
    skipped = sum(1 for f in findings if f.ok is None)
    head = "all checks passed" if not failed else f"{failed} check(s) FAILED"
    return f"{head} ({passed} ok, {failed} failed, {skipped} skipped)"


def render(findings: Sequence[Finding]) -> list[str]:
    width = max([len(f.check) for f in findings] or [5])
    return [f.line(width) for f in findings] + [summary(findings)]


def to_json(findings: Sequence[Finding]) -> dict[str, Any]:
    return {
        "ok": exit_code(findings) == 0,
        "summary": summary(findings),
        "checks": [f.to_dict() for f in findings],
    }


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def clock_finding(offsets: Sequence[tuple[str, float]], limit: float = CLOCK_LIMIT) -> Finding:
    """offsets: (endpoint, their clock minus ours, seconds) of each endpoint that answered."""
    if not offsets:
        return Finding(
            "clock",
            "local",
            None,
            "not checked: no endpoint answered HTTP with a Date header",
            "an http or https check on an endpoint gives the clock something to compare with",
        )
    offset = -median([o for _, o in offsets])  # ours minus theirs
    names = ", ".join(name for name, _ in offsets)
    detail = f"{offset:+.1f}s against {len(offsets)} endpoint(s) ({names}), 1 s resolution"
    if abs(offset) > limit:
        return Finding(
            "clock",
            "local",
            False,
            f"this machine's clock is off by {detail}",
            "enable time synchronisation (systemd-timesyncd or chrony)",
        )
    return Finding("clock", "local", True, detail)
