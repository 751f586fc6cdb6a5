"""The project's errors and the exit codes they map to.

Every error a user can cause is a FailoverError with a one-line message; `main()` prints
it and exits with its code. Anything else is a bug and shows a traceback only with --debug.
"""

from __future__ import annotations

import unicodedata
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # an operation failed (provider down, restic error, ...)
    USAGE = 2  # bad command line or invalid config
    UNSAFE = 3  # a plan was refused as unsafe (use --force to override where offered)
    LOCKED = 4  # another failover process holds the state lock
    DEGRADED = 5  # `check --strict`: the round completed but something is down or stale
    INTERRUPTED = 130  # SIGINT


class FailoverError(Exception):
    """Root of the project's errors. The message is one line, safe to show (no secrets)."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (hint: {self.hint})" if self.hint else base


def one_line(text: str, limit: int = 500) -> str:
    """`text` as one printable line: control, format and line-separator characters
    (newline, CR, NUL, ESC, U+2028, bidi overrides) escaped as \\n, \\x1b, \\u2028, so
    that a key or value from a file cannot forge another line of output; cut at `limit`."""
    out = []
    for ch in text:
        if ch in "\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    line = "".join(out)
    return line if len(line) <= limit else line[: limit - 3] + "..."


class ConfigError(FailoverError):
    """The config file is invalid. Carries every problem found, one per line (each made one
    printable line: nothing in a config can forge an extra line of the report)."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[str]) -> None:
        problems = [one_line(p, 1000) for p in problems]
        self.problems = problems
        super().__init__("\n".join(problems))


class UsageError(FailoverError):
    exit_code = ExitCode.USAGE


class StateError(FailoverError):
    """The state file cannot be used: not ours, damaged, on a full or read-only disk, or
    another user's. The message says what to do."""


class StateLocked(FailoverError):
    exit_code = ExitCode.LOCKED
    holder_pid: int | None = None  # the process holding the lock, from the lock file
    holder_role: str | None = None  # what it is: "check", "agent", "dns set", ...


class UnsafePlan(FailoverError):
    exit_code = ExitCode.UNSAFE


class ProviderError(FailoverError):
    """A provider (DNS, compute, object store) failed. The message names the provider."""


class AuthError(ProviderError):
    pass


class NotFound(ProviderError):
    pass


class RateLimited(ProviderError):
    pass


class Unreachable(ProviderError):
    pass


class BackupError(FailoverError):
    pass


class RemoteError(FailoverError):
    pass


class LostLeadership(FailoverError):
    """This watcher may no longer act for its coordination group (its lease lapsed, or
    another leader took over): a run stops where it is, for the leader to resume."""
