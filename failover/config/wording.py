"""Config errors in the tool's own words: pydantic's messages ("Input tag 'htps' found
using 'type' does not match any of the expected tags: ...") become short sentences that say
what was expected, and an unknown key or value gets a "did you mean" when one is close.

`reword(error, root)` takes one of pydantic's error dicts (`ValidationError.errors()`) and
the root model (Config), and returns the message; the location is the caller's business.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel

from failover.config.base import NAME_PATTERN

_MAX_SHOWN = 40


def shown(value: Any) -> str:
    """A value from the config as it may appear in a message: quoted, escaped (a newline
    cannot forge a line), cut short."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 4] + "...'"


def did_you_mean(word: Any, choices: typing.Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _one_of(items: typing.Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _tags(text: str) -> list[str]:
    """ "'http', 'https'" or "'cold' or 'warm'" -> ['http', 'https'] / ['cold', 'warm']."""
    return [t.strip(" '\"") for t in text.replace(" or ", ", ").split(",") if t.strip(" '\"")]


def _unknown_key(error: dict[str, Any], root: type[BaseModel] | None) -> str:
    key = error["loc"][-1]
    fields = fields_at(root, tuple(error["loc"][:-1])) if root is not None else None
    return "unknown key" + (did_you_mean(key, fields) if fields else "")


def _bounds(kind: str, ctx: dict[str, Any]) -> str | None:
    limits = {
        "greater_than_equal": ("must be at least", "ge"),
        "greater_than": ("must be more than", "gt"),
        "less_than_equal": ("must be at most", "le"),
        "less_than": ("must be less than", "lt"),
    }
    if kind in limits:
        words, key = limits[kind]
        return f"{words} {ctx.get(key)}"
    sizes = {
        "too_short": ("needs at least", "min_length", "item"),
        "too_long": ("takes at most", "max_length", "item"),
        "string_too_short": ("needs at least", "min_length", "character"),
        "string_too_long": ("takes at most", "max_length", "character"),
    }
    if kind in sizes:
        words, key, unit = sizes[kind]
        n = ctx.get(key)
        return f"{words} {n} {unit}{'' if n == 1 else 's'}"
    return None


_TYPES = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list ([a, b] or one `- item` per line)",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
}


def reword(error: dict[str, Any], root: type[BaseModel] | None = None) -> str:
    """One pydantic error as the tool says it."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    value = error.get("input")
    message = str(error.get("msg", ""))
    if kind == "extra_forbidden":
        return _unknown_key(error, root)
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tags = _tags(str(ctx.get("expected_tags", "")))
        field = str(ctx.get("discriminator", "type")).strip("'")
        return (
            f"unknown {field} {shown(ctx.get('tag'))}{did_you_mean(ctx.get('tag'), tags)}: "
            f"expected {_one_of(tags)}"
        )
    if kind == "union_tag_not_found":
        field = str(ctx.get("discriminator", "type")).strip("'")
        return f"needs a `{field}` key"
    if kind in ("literal_error", "enum"):
        options = _tags(str(ctx.get("expected", "")))
        return f"expected {_one_of(options)}, got {shown(value)}{did_you_mean(value, options)}"
    if kind in _TYPES:
        return f"{_TYPES[kind]}, got {shown(value)}"
    bound = _bounds(kind, ctx)
    if bound is not None:
        return bound
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == NAME_PATTERN:
            return (
                f"{shown(value)} is not a valid name: a letter or digit, then letters, "
                "digits, _ . or -, at most 63 characters"
            )
        return f"{shown(value)} does not have the expected form"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


# --- which keys a location has (for "did you mean") ------------------------------------------


def fields_at(root: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str] | None:
    """The keys of the mapping at `loc` (pydantic's location, with union tags) when that
    mapping is one of the models, else None."""
    current: Any = root
    for part in loc:
        current = _descend(current, part)
        if current is None:
            return None
    model = _model_of(current)
    if model is None:
        return None
    return [info.alias or name for name, info in model.model_fields.items()]


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    models = [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    return models[0] if len(models) == 1 else None


def _tag_of(model: type[BaseModel]) -> list[str]:
    info = model.model_fields.get("type")
    if info is None:
        return []
    annotation = _strip(info.annotation)
    if typing.get_origin(annotation) is Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return []


def _descend(annotation: Any, part: Any) -> Any:
    members = _members(annotation)
    if isinstance(part, str):
        tagged = [
            m
            for m in members
            if isinstance(m, type) and issubclass(m, BaseModel) and part in _tag_of(m)
        ]
        if len(members) > 1 and tagged:
            return tagged[0]  # a discriminated union's tag: the member it chose
    for member in members:
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if isinstance(part, int) and origin in (list, tuple) and args:
            return args[0]
        if origin is dict and len(args) == 2 and not isinstance(part, int):
            return args[1]
        if isinstance(member, type) and issubclass(member, BaseModel):
            info = member.model_fields.get(str(part))
            if info is not None:
                return info.annotation
    return None
