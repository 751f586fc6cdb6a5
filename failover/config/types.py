"""Value types shared by the config models: durations and secret references."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """'90s', '5m', '1.5h', '2d', or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration", "expected a duration such as 30s, 5m, 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise PydanticCustomError(
            "duration", "expected a duration such as 30s, 5m, 1h, got {value}", {"value": value}
        )
    if seconds < 0:
        raise PydanticCustomError("duration", "a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d|w)?$"},
            ],
            "description": "A duration: seconds, or a number with a unit (ms, s, m, h, d, w).",
        }
    ),
]


class Secret:
    """A resolved secret. Its repr and str never show the value; `reveal()` does."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source  # "${NAME}", "file:/path" or "inline": safe to show

    def reveal(self) -> str:
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
            raise PydanticCustomError(
                "secret", "environment variable {name} is not set", {"name": name}
            )
        return Secret(env[name], f"${{{name}}}")
    if value.startswith("file:"):
        raw = value[len("file:") :]
        base = context.get("base_dir")
        path = Path(raw).expanduser()
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        try:
            text = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode
        except OSError as exc:
            raise PydanticCustomError(
                "secret",
                "cannot read secret file {path}: {err}",
                {"path": str(path), "err": exc.strerror or exc.__class__.__name__},
            ) from None
        if warnings is not None and readable_by_others(mode):
            warnings.append(f"secret file {path} is readable by others (chmod 600 it)")
        return Secret(text.rstrip("\r\n"), f"file:{path}")
    inline = context.get("inline_secrets")
    if isinstance(inline, list):
        inline.append("inline")  # counted: the loader looks for where they are only then
    return Secret(value, "inline")


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
