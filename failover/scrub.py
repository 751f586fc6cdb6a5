"""Secrets out of text: PURE. The one scrubbing point for anything that may carry a URL or a
credential on its way to a log line, the state, `status` or an error message.

`scrub(text)` masks, in this order:
- the values of secrets the process knows (every secret the config resolved registers
  itself with `register_secret`; adapters add the ones they hand to an SDK), and any
  extra values the caller passes;
- the whole userinfo of every URL (`scheme://user:p@ss@host/` -> `scheme://***@host/`:
  up to the last `@` before the host, so a password holding `@` is masked whole);
- the values of query parameters that look like credentials (`?token=...`, `key`,
  `signature`, `X-Amz-Credential`, ...) or that are long random-looking strings.

`describe_exception(exc)` is the one-line, scrubbed "Class: message" every failure that is
logged or journaled goes through.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MIN_SECRET = 4  # shorter values would garble every message; they are not worth guessing
MASK = "***"

_known: set[str] = set()
_known_lock = threading.Lock()

# scheme://rest-of-URL, up to whitespace, quotes or brackets that end a URL in prose.
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"<>`]+)")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")
_SECRET_NAME = re.compile(
    r"(?i)(token|key|secret|pass|pwd|auth|sig|credential|session|ticket|code|jwt|bearer)"
)
_RANDOM_VALUE = re.compile(r"^[A-Za-z0-9_\-.~%+/=]{16,}$")


def register_secret(value: str) -> None:
    """Remember a secret value: `scrub()` masks it wherever it appears from now on."""
    if isinstance(value, str) and len(value) >= MIN_SECRET:
        with _known_lock:
            _known.add(value)
            _known.update(_secret_parts(value))


def _secret_parts(value: str) -> set[str]:
    """The parts of a secret that leak it on their own: the value stripped, and for a URL
    (a heartbeat or notification URL) its password and its random-looking path or query
    tokens (a healthchecks.io UUID, an Uptime Kuma push token)."""
    parts = {value.strip(), value.rstrip("/")}
    m = _URL.search(value)
    if m:
        rest = m.group(2)
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if "@" in authority:
            userinfo = authority.rpartition("@")[0]
            parts.add(userinfo)
            parts.add(userinfo.partition(":")[2])
        for token in re.split(r"[/?#&=;]", rest[len(authority) :]):
            if _RANDOM_VALUE.match(token) and re.search(r"\d", token):
                parts.add(token)
    return {p for p in parts if len(p) >= MIN_SECRET}


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    with _known_lock:
        _known.clear()


def mask_userinfo(url_rest: str) -> str:
    """`user:pass@host/path` (the part of a URL after `scheme://`) with the userinfo masked:
    everything up to the last `@` of the authority, which ends at the first `/`, `?`, `#`."""
    end = len(url_rest)
    for stop in "/?#":
        at = url_rest.find(stop)
        if at != -1:
            end = min(end, at)
    authority = url_rest[:end]
    at = authority.rfind("@")
    if at == -1:
        return url_rest
    return f"{MASK}@{url_rest[at + 1 :]}"


def _mask_query(url_rest: str) -> str:
    def pair(m: re.Match[str]) -> str:
        sep, name, value = m.group(1), m.group(2), m.group(3)
        if value and (_SECRET_NAME.search(name) or _RANDOM_VALUE.match(value)):
            return f"{sep}{name}={MASK}"
        return m.group(0)

    if "?" not in url_rest:
        return url_rest
    path, _, query = url_rest.partition("?")
    return path + _QUERY_PAIR.sub(pair, "?" + query)


def redact_url(text: str) -> str:
    """Every URL in `text` with its userinfo and credential-like query values masked."""

    def one(m: re.Match[str]) -> str:
        return m.group(1) + _mask_query(mask_userinfo(m.group(2)))

    return _URL.sub(one, text)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` safe to log, store or show: known and given secret values, URL userinfo and
    credential-like query values masked."""
    if not text:
        return text
    with _known_lock:
        values = set(_known)
    values.update(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET)
    for value in sorted(values, key=len, reverse=True):  # longest first: no partial leftovers
        if value in text:
            text = text.replace(value, MASK)
    return redact_url(text)


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """`Class: message` on one line, scrubbed: how a failure is logged or journaled."""
    message = " ".join(str(exc).split()) if str(exc) else ""
    name = exc.__class__.__name__
    return scrub(f"{name}: {message}" if message else name, secrets)


__all__ = [
    "MASK",
    "describe_exception",
    "forget_secrets",
    "mask_userinfo",
    "redact_url",
    "register_secret",
    "scrub",
]
