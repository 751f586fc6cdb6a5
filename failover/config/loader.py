"""YAML loading that remembers where every key stands, and error formatting.

We compose the YAML node tree ourselves (PyYAML's C loader when present) so that each
value's path (("sites", "shop", "checks", 0, "port")) maps to its line. pydantic's error
locations are then turned into `FILE:LINE: key.path: message`, every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from failover.config.files import CONFIG_LIMIT, SmallFileError, read_small_file, size_text
from failover.errors import ConfigError

try:  # the C loader is several times faster on large configs
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]


class LineMap:
    """Where each path of a loaded document stands in its file."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: dict[Path_, int] = {}

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of the longest prefix of `path` that the document has."""
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), None)

    def where(self, path: Iterable[str | int]) -> str:
        line = self.line_of(path)
        return f"{self.filename}:{line}" if line else self.filename


MAX_DEPTH = 64
"""Values nested deeper than this are refused (a config needs about eight levels)."""
MAX_ALIAS_VALUES = 10_000
"""Values that aliases (`*name`) may add to a document: enough for any config, and a bound
on "billion laughs" documents (a few hundred bytes that expand to gigabytes)."""
MAX_DOCUMENT = CONFIG_LIMIT

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_COLLECTION_TAGS = {_YAML + "seq", _YAML + "map"}


class _Stop(Exception):
    """A problem after which the rest of the document cannot be read."""


class _Builder:
    """Turns the composed node graph into plain data, recording each path's line and every
    problem, within the limits above (depth, alias expansion, no recursive aliases)."""

    def __init__(self, text: str, lines: LineMap, loader: Any) -> None:
        self.text = text
        self.lines = lines
        self.loader = loader
        self.problems: list[str] = []
        self.seen: set[int] = set()
        self.active: set[int] = set()  # the collections being built: their ancestors
        self.alias_values = 0
        self._alias_lines: list[int] | None = None
        self._aliases_used = 0
        self.entry: tuple[int, Path_] = (0, ())  # where the alias being expanded is written

    def problem(self, line: int, path: Path_, message: str) -> None:
        self.problems.append(f"{self.lines.filename}:{line}: {_dotted(path) or '(top)'}: {message}")

    def alias_line(self) -> int:
        """The line of the next alias in document order: aliases are met while building in
        the order they are written, so the n-th alias entered is the n-th `*name`."""
        if self._alias_lines is None:
            self._alias_lines = [
                e.start_mark.line + 1 if e.start_mark else 0
                for e in yaml.parse(self.text, Loader=_Loader)
                if isinstance(e, yaml.AliasEvent)
            ]
        index = self._aliases_used
        self._aliases_used += 1
        return self._alias_lines[index] if index < len(self._alias_lines) else 0

    def build(self, node: yaml.Node, path: Path_, depth: int = 0, via_alias: bool = False) -> Any:
        line = node.start_mark.line + 1
        if id(node) in self.seen and not via_alias:  # a `*name`: met for the first time here
            line = self.alias_line() or line
            via_alias = True
            self.entry = (line, path)
        self.lines.lines.setdefault(path, line)
        if id(node) in self.active:
            self.problem(line, path, "recursive YAML alias (a value that contains itself)")
            raise _Stop
        self.seen.add(id(node))
        if via_alias:
            self.alias_values += 1
            if self.alias_values > MAX_ALIAS_VALUES:
                self.problem(
                    *self.entry,
                    f"YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values "
                    "(write the values out, or use fewer aliases)",
                )
                raise _Stop
        if depth > MAX_DEPTH:
            self.problem(line, path, f"values nested more than {MAX_DEPTH} levels deep")
            raise _Stop
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path, line)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                value: Any = self.mapping(node, path, depth, via_alias)
            else:
                value = [
                    self.build(item, (*path, i), depth + 1, via_alias)
                    for i, item in enumerate(node.value)
                ]
        finally:
            self.active.discard(id(node))
        if node.tag not in _COLLECTION_TAGS:  # built all the same: its aliases count
            self.problem(line, path, _tag_problem(node.tag))
            return None
        return value

    def mapping(self, node: yaml.MappingNode, path: Path_, depth: int, via_alias: bool) -> Any:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _YAML + "merge":
                self.problem(key_line, path, "YAML merge keys (<<) are not supported")
                self.build(value_node, path, depth + 1, via_alias)  # its aliases still count
                continue
            key = self.build(key_node, path, depth + 1, via_alias)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_line, path, "a key must be a plain name, not a list or mapping")
                self.build(value_node, path, depth + 1, via_alias)
                continue
            if not isinstance(key, str):  # 1, yes, null: keys are names, taken as written
                key = str(key_node.value)
            child = (*path, key)
            if key in result:
                self.problem(key_line, child, "duplicate key")
            self.lines.lines[child] = key_line
            result[key] = self.build(value_node, child, depth + 1, via_alias)
        return result

    def scalar(self, node: yaml.ScalarNode, path: Path_, line: int) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.problem(line, path, _tag_problem(node.tag))
            return None
        if node.tag == _YAML + "timestamp":
            return str(node.value)  # dates stay text; the models parse them
        try:
            value = self.loader.construct_object(node, deep=True)
        except ValueError as exc:  # an integer of more than 4,300 digits, and the like
            message = "a number this long is not allowed" if "digits" in str(exc) else str(exc)
            self.problem(line, path, message)
            return None
        except yaml.YAMLError as exc:
            self.problem(line, path, f"cannot read this value: {getattr(exc, 'problem', exc)}")
            return None
        if isinstance(value, str) and "\0" in value:
            self.problem(line, path, "a NUL character is not allowed")
            return None
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = str(node.value)
        return value


def _tag_problem(tag: str) -> str:
    shown = "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
    return f"unsupported YAML tag {shown} (plain values, lists and mappings only)"


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_yaml(text: str, filename: str) -> tuple[Any, LineMap]:
    """Parse YAML text into plain data plus a LineMap. Raises ConfigError on bad YAML, on a
    document over 1 MiB, and past the limits of nesting and alias expansion."""
    lines = LineMap(filename)
    if len(text) > MAX_DOCUMENT or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT:
        raise ConfigError([f"{filename}: the config is larger than {size_text(MAX_DOCUMENT)}"])
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError([f"{filename}{line}: invalid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{filename}: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{filename}: invalid YAML: nested too deeply"]) from None
    if node is None:
        return {}, lines
    loader = _Loader("")
    builder = _Builder(text, lines, loader)
    try:
        data = builder.build(node, ())
    except _Stop:
        data = None
    finally:
        loader.dispose()
    if builder.problems:
        raise ConfigError(builder.problems)
    return data, lines


def read_config_text(path: Path) -> str:
    """The config file's text: a regular file of at most 1 MiB of UTF-8."""
    try:
        return read_small_file(path, CONFIG_LIMIT)
    except SmallFileError as exc:
        if str(exc) == "no such file":
            raise ConfigError([f"{path}: config file not found"]) from None
        raise ConfigError([f"{path}: cannot read the config: {exc}"]) from None


def format_problem(lines: LineMap, loc: Iterable[str | int], message: str) -> str:
    loc = tuple(loc)
    return f"{lines.where(loc)}: {_dotted(loc) or '(top)'}: {message}"


dotted = _dotted
