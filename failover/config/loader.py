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


def _construct(
    node: yaml.Node, path: Path_, lines: LineMap, problems: list[str], loader: Any
) -> Any:
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(
                    f"{lines.filename}:{key_node.start_mark.line + 1}: "
                    f"{_dotted(path) or '(top)'}: YAML merge keys (<<) are not supported"
                )
                continue
            key = _scalar(key_node, loader)
            child = (*path, key)
            if key in result:
                problems.append(
                    f"{lines.filename}:{key_node.start_mark.line + 1}: "
                    f"{_dotted(child)}: duplicate key"
                )
            lines.lines[child] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, child, lines, problems, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, i), lines, problems, loader)
            for i, item in enumerate(node.value)
        ]
    return _scalar(node, loader)


def _scalar(node: yaml.Node, loader: Any) -> Any:
    # Let PyYAML resolve the scalar's type (int, bool, null); dates stay text.
    if node.tag == "tag:yaml.org,2002:timestamp":
        return str(node.value)
    value = loader.construct_object(node, deep=True)
    if not isinstance(value, (str, int, float, bool, type(None), list, dict)):
        value = str(node.value)  # dates and the like stay text; the models parse them
    return value


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_yaml(text: str, filename: str) -> tuple[Any, LineMap]:
    """Parse YAML text into plain data plus a LineMap. Raises ConfigError on bad YAML."""
    lines = LineMap(filename)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError([f"{filename}{line}: invalid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{filename}: invalid YAML: {exc}"]) from None
    if node is None:
        return {}, lines
    problems: list[str] = []
    loader = _Loader("")
    try:
        data = _construct(node, (), lines, problems, loader)
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(problems)
    return data, lines


def read_config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read config: {exc.__class__.__name__}"]) from None


def format_problem(lines: LineMap, loc: Iterable[str | int], message: str) -> str:
    loc = tuple(loc)
    return f"{lines.where(loc)}: {_dotted(loc) or '(top)'}: {message}"


dotted = _dotted
