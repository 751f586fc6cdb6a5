"""Value types shared by the config models: durations and secret references."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

from failover.config.files import SECRET_LIMIT, SmallFileError, expand_path, read_small_file
from failover.durations import MAX_SECONDS, DurationError, format_duration
from failover.durations import PATTERN as DURATION_PATTERN
from failover.durations import parse_duration as _parse_duration
from failover.scrub import register_secret


def parse_duration(value: Any) -> float:
    """'90s', '5m', '1.5h', '1h30m', '2d', or a number of seconds -> seconds (finite, not
    negative, at most 400 days): `failover.durations.parse_duration` for the models."""
    try:
        return _parse_duration(value)
    except DurationError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "A duration: seconds, or numbers with units largest first "
            "(ms, s, m, h, d, w): 90s, 5m, 1h30m. At most 400 days.",
        }
    ),
]


class Secret:
    """A resolved secret. Its repr and str never show the value; `reveal()` does."""

    __slots__ = ("_value", "absent", "source")

    def __init__(self, value: str, source: str, absent: bool = False) -> None:
        self._value = value
        self.source = source  # "${NAME}", "file:/path" or "inline": safe to show
        # Not available on this machine: a voter-only watcher's config names credentials
        # that it must not hold (coordination.watchers.NAME.can_act: false).
        self.absent = absent

    def reveal(self) -> str:
        if self.absent:
            from failover.errors import UsageError

            raise UsageError(
                f"the secret {self.source} is not available on this watcher (can_act: false): "
                "it votes only and never acts"
            )
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            _resolve_secret,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: s.source),
            json_schema_input_schema=core_schema.str_schema(),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, _core: Any, _handler: Any) -> dict[str, Any]:
        return {
            "type": "string",
            "description": "A secret: ${ENV_VAR}, file:/path/to/file, or (discouraged) the value inline.",
        }


_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _resolve_secret(value: Any, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("secret", "expected a secret reference: ${ENV_VAR} or file:/path")
    context = info.context or {}
    env = context.get("env", os.environ)
    warnings: list[str] | None = context.get("warnings")
    if m := _ENV_REF.match(value):
        name = m.group(1)
        if name not in env:
            if context.get("absent_secrets"):
                return Secret("", f"${{{name}}}", absent=True)
            raise PydanticCustomError(
                "secret", "environment variable {name} is not set", {"name": name}
            )
        return _known(env[name], f"${{{name}}}")
    if value.startswith("file:"):
        raw = value[len("file:") :]
        try:
            path, text, mode = _read_secret_file(raw, context.get("base_dir"))
        except PydanticCustomError:
            if context.get("absent_secrets"):  # a voter-only watcher: it holds none
                return Secret("", f"file:{raw}", absent=True)
            raise
        if warnings is not None and readable_by_others(mode):
            warnings.append(f"secret file {path} is readable by others (chmod 600 it)")
        return _known(text.rstrip("\r\n"), f"file:{path}")
    inline = context.get("inline_secrets")
    if isinstance(inline, list):
        inline.append("inline")  # counted: the loader looks for where they are only then
    return _known(value, "inline")


def _known(value: str, source: str) -> Secret:
    """A Secret whose value the scrubber now masks wherever it would be shown."""
    register_secret(value)
    return Secret(value, source)


def _read_secret_file(raw: str, base: Any) -> tuple[Path, str, int]:
    """(path, text, mode) of a `file:` secret: a regular file of at most 64 KiB."""
    shown = raw
    try:
        path = expand_path(Path(raw))
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        shown = str(path)
        text = read_small_file(path, SECRET_LIMIT)
        mode = path.stat().st_mode
    except (SmallFileError, OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PydanticCustomError(
            "secret",
            "cannot read secret file {path}: {err}",
            {"path": shown, "err": reason},
        ) from None
    return path, text, mode


SecretField = Secret

__all__ = ["Duration", "Secret", "format_duration", "parse_duration"]


def readable_by_others(mode: int) -> bool:
    """Group or others may read (or write) a file with this mode."""
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def warn_if_world_readable(path: Path, what: str, warnings: list[str]) -> None:
    """Add a warning when the file holding secrets can be read by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if readable_by_others(mode):
        warnings.append(f"{what} {path} is readable by others (chmod 600 it)")
