"""Body regular expressions with a bound: `expect_body_regex` is matched by RE2 (google-re2),
whose time is linear in the body's length whatever the pattern, so a backtracking pattern
such as `(a+)+$` can never freeze a probe round. RE2 has no backreferences and no
lookaround; the config rejects such patterns with a clear error.

Compiled patterns are cached; RE2 is imported only when a check has a regex.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

RE2_MAX_MEM = 8 << 20  # bytes RE2 may use for one compiled pattern (its default is 8 MiB)


class RegexError(ValueError):
    """The pattern is not valid RE2 syntax (or too large); the message says why."""


def _options() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print parse errors on stderr itself
    options.max_mem = RE2_MAX_MEM
    return options


@lru_cache(maxsize=256)
def compile_bounded(pattern: str) -> Any:
    """The compiled RE2 pattern; RegexError when RE2 cannot take it."""
    import re2

    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise RegexError(
            f"not a valid RE2 pattern ({reason}): backreferences and lookaround "
            "are not supported, matching runs in linear time"
        ) from None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text`, in time linear in len(text)."""
    return compile_bounded(pattern).search(text) is not None
