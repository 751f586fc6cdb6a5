"""Fuzzing the config (issue #10): hypothesis mutates the sample configs in configs/*.yaml
(keys deleted, values of the wrong type, non-finite and huge numbers, YAML tags, aliases,
recursive aliases, alias bombs, control characters in keys and values, stray characters in
the text) and feeds them to the validation `failover validate` runs. Every outcome is a
valid config or a ConfigError of located one-line problems: never another exception, never
a hang. A few examples go through the real CLI, which must exit 0 or 2.

The budget is bounded for the suite (FAILOVER_FUZZ_EXAMPLES raises it for a deeper run).
"""

from __future__ import annotations

import copy
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.config.load import parse_config
from failover.errors import ConfigError
from tests.support import write
from tests.support.cli import failover

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "configs").glob("*.yaml"))
TEXTS = {p.name: p.read_text() for p in SAMPLES}
ENV = {
    name: f"fuzz-secret-{name.lower()}"
    for text in TEXTS.values()
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)
}
EXAMPLES = int(os.environ.get("FAILOVER_FUZZ_EXAMPLES", "200"))
HANG = 5.0  # seconds: one validation taking longer is a hang


class Tagged:
    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class BigInt:
    def __init__(self, digits: int) -> None:
        self.text = "9" * digits


class FuzzDumper(yaml.SafeDumper):
    pass


def _tagged(dumper: yaml.SafeDumper, data: Tagged) -> yaml.Node:
    if isinstance(data.value, dict):
        return dumper.represent_mapping(data.tag, data.value)
    if isinstance(data.value, list):
        return dumper.represent_sequence(data.tag, data.value)
    return dumper.represent_scalar(data.tag, str(data.value))


FuzzDumper.add_representer(Tagged, _tagged)
FuzzDumper.add_representer(BigInt, lambda d, v: d.represent_scalar("tag:yaml.org,2002:int", v.text))
FuzzDumper.ignore_aliases = lambda self, data: False  # type: ignore[method-assign]

ODD_CHARS = "\x00\x01\x07\x08\x1b\x7f\n\r\t\u2028\u202e\ufeff\x85 :#&*!|>%@`'\"[]{},"
odd_text = st.text(alphabet=st.sampled_from(ODD_CHARS) | st.characters(), max_size=12)
TAGS = [
    "!foo",
    "tag:example.com,2024:x",
    *(
        f"tag:yaml.org,2002:{name}"  # written as !!name
        for name in ("binary", "set", "omap", "timestamp", "float", "int", "str", "null")
    ),
    "tag:yaml.org,2002:python/object/apply:os.system",
]
STRINGS = [
    "~nouser-fuzz/x",
    "file:~nouser-fuzz/secret",
    "file:/nonexistent/secret",
    "file:",
    "${FUZZ_UNSET_VARIABLE}",
    "/tmp/a\x00b",
    "1h30m",
    "30m1h",
    ".nan",
    "-1s",
    "9999999999999999999999d",
    "0",
    "",
]


def wrong_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 2**63, 10**20, 65536]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308]),
        st.booleans(),
        st.none(),
        st.sampled_from(STRINGS),
        odd_text,
        st.lists(st.integers(-3, 3), max_size=3),
        st.dictionaries(odd_text, st.integers(-3, 3), max_size=2),
        st.builds(BigInt, st.sampled_from([4301, 5000])),
    )


def paths(tree: Any) -> list[tuple[Any, ...]]:
    """Every path of the tree, each shared (aliased) or recursive container walked once."""
    found: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    stack: list[tuple[tuple[Any, ...], Any]] = [((), tree)]
    while stack:
        prefix, node = stack.pop()
        found.append(prefix)
        if isinstance(node, (dict, list)):
            if id(node) in seen:
                continue
            seen.add(id(node))
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend(((*prefix, key), value) for key, value in items)
    return sorted(found, key=lambda p: (len(p), repr(p)))


def get(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def laughs(levels: int) -> list[Any]:
    level: list[Any] = ["lol"] * 9
    for _ in range(levels):
        level = [level] * 9  # the same list nine times: nine aliases when dumped
    return level


def mutate(tree: Any, data: st.DataObject) -> Any:
    all_paths = paths(tree)
    path = data.draw(st.sampled_from(all_paths), label="path")
    op = data.draw(
        st.sampled_from(
            ["delete", "wrong", "rename", "alias", "recursive", "laughs", "tag", "string"]
        ),
        label="op",
    )
    if not path:
        return data.draw(wrong_values(), label="top") if op == "wrong" else tree
    parent, last = get(tree, path[:-1]), path[-1]
    if op == "delete":
        del parent[last]
    elif op == "wrong":
        parent[last] = data.draw(wrong_values(), label="value")
    elif op == "rename" and isinstance(parent, dict):
        parent[data.draw(odd_text, label="key")] = parent.pop(last)
    elif op == "alias":
        other = get(tree, data.draw(st.sampled_from(all_paths), label="other"))
        parent[last] = other  # the same object twice: an anchor and an alias
    elif op == "recursive":
        value = parent[last]
        if isinstance(value, list):
            value.append(value)
        elif isinstance(value, dict):
            value["self"] = value
        else:
            parent[last] = [parent]  # contains its own parent
    elif op == "laughs":
        parent[last] = laughs(data.draw(st.integers(2, 9), label="levels"))
    elif op == "tag":
        parent[last] = Tagged(data.draw(st.sampled_from(TAGS), label="tag"), parent[last])
    elif op == "string":
        parent[last] = data.draw(st.sampled_from(STRINGS), label="string")
    return tree


def mutated_text(data: st.DataObject) -> str:
    name = data.draw(st.sampled_from(sorted(TEXTS)), label="sample")
    tree = copy.deepcopy(yaml.safe_load(TEXTS[name]))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        tree = mutate(tree, data)
    text = yaml.dump(tree, Dumper=FuzzDumper, sort_keys=False, allow_unicode=True)
    if data.draw(st.booleans(), label="raw"):  # a stray character in the text itself
        at = data.draw(st.integers(0, len(text)), label="at")
        text = text[:at] + data.draw(st.sampled_from(ODD_CHARS), label="char") + text[at:]
    return text


@contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the body runs longer than `seconds`."""

    def alarm(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"validation still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def validate_in_process(text: str, base: Path) -> None:
    try:
        with hang_guard(HANG):
            parse_config(text, "fuzz.yaml", env=ENV, base_dir=base)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.startswith("fuzz.yaml"), problem
            assert len(str(problem).splitlines()) == 1, problem
        assert len(str(exc).splitlines()) == len(exc.problems)


def test_the_samples_are_valid_as_they_are(tmp_path: Path) -> None:
    assert len(SAMPLES) >= 3
    for name, text in TEXTS.items():
        parse_config(text, name, env=ENV, base_dir=tmp_path)
        dumped = yaml.dump(yaml.safe_load(text), Dumper=FuzzDumper, sort_keys=False)
        parse_config(dumped, name, env=ENV, base_dir=tmp_path)  # the fuzzer's starting point


@settings(
    max_examples=EXAMPLES,
    deadline=HANG * 1000,
    database=None,
    derandomize=EXAMPLES <= 200,  # the suite's run is repeatable; a deeper one explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_mutated_configs_give_config_errors_never_internal_ones(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    validate_in_process(mutated_text(data), tmp_path_factory.getbasetemp())


@settings(
    max_examples=max(4, EXAMPLES // 40),
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= 200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_validate_through_the_cli_exits_0_or_2(tmp_path: Path, data: st.DataObject) -> None:
    config = write(tmp_path / "fuzz.yaml", mutated_text(data))
    proc = failover("validate", config=config, env=ENV, timeout=20)
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
