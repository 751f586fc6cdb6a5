"""Hostile or broken config input: every case is a located config error (FILE:LINE: key:
message, exit code 2), never an internal error, a hang or a memory blow-up (issue #10)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from failover.config.load import load_config, parse_config
from failover.errors import ConfigError

MINIMAL = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 192.0.2.1}
    checks:
      - {type: tcp, port: 22}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml", env=env or {})
    return info.value.problems


def only(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --- YAML -----------------------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    names = "abcdefghijklmnop"[:levels]
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_quickly_at_the_alias() -> None:
    text = billion_laughs()
    assert len(text) < 400  # a few hundred bytes that expand to 9**9 strings
    started = time.monotonic()
    p = only(text + MINIMAL)
    assert time.monotonic() - started < 5
    assert "YAML aliases expand to more than 10,000 values" in p
    assert p.startswith("f.yaml:")  # the line of the alias that went over


def test_a_few_aliases_are_fine() -> None:
    text = MINIMAL.replace(
        "      - {type: tcp, port: 22}", "      - &ssh {type: tcp, port: 22}\n      - *ssh"
    )
    checks = parse_config(text, "f.yaml", env={}).config.sites["shop"].checks
    assert len(checks) == 2


@pytest.mark.parametrize(
    "text,line,key",
    [
        ("a: &a [*a]\n", 1, "a[0]"),
        ("a: &a\n  - x\n  - y: *a\n", 3, "a[1].y"),
        ("a: &a {b: {c: *a}}\n", 1, "a.b.c"),
    ],
)
def test_recursive_alias_is_located(text: str, line: int, key: str) -> None:
    assert only(text + MINIMAL) == (
        f"f.yaml:{line}: {key}: recursive YAML alias (a value that contains itself)"
    )


def test_deep_nesting_is_refused() -> None:
    text = "x: " + "[" * 200 + "]" * 200 + "\n" + MINIMAL
    assert "nested" in only(text)
    text = "x:\n" + "".join("  " * i + "- \n" for i in range(100)) + MINIMAL
    assert "nested more than 64 levels" in " ".join(problems(text))


def test_document_size_is_limited() -> None:
    text = MINIMAL + "# " + "x" * (1024 * 1024) + "\n"
    assert only(text) == "f.yaml: the config is larger than 1 MiB"


@pytest.mark.parametrize(
    "head,expected",
    [
        ("x: !foo 1\n", "f.yaml:1: x: unsupported YAML tag !foo"),
        ("x: !foo {a: 1}\n", "f.yaml:1: x: unsupported YAML tag !foo"),
        ("x: !!binary aGVsbG8=\n", "f.yaml:1: x: unsupported YAML tag !!binary"),
        ("x: !!python/name:os.system\n", "f.yaml:1: x: unsupported YAML tag"),
        ("canary_min_ok: " + "9" * 5000 + "\n", "f.yaml:1: canary_min_ok: a number this long"),
        ("? [a, b]\n: 1\n", "f.yaml:1: (top): a key must be a plain name"),
        ("? {a: 1}\n: 1\n", "f.yaml:1: (top): a key must be a plain name"),
        ('state: "/tmp/a\\0b"\n', "f.yaml:1: state: a NUL character is not allowed"),
        ("state: ~nouser-failover-test/state.db\n", "f.yaml:1: state: cannot expand ~nouser"),
        (
            "notify:\n  - url: file:~nouser-failover-test/x\n",
            "f.yaml:2: notify[0].url: cannot read secret file",
        ),
        ("b: &b {x: 1}\nc: {<<: *b}\n", "f.yaml:2: c: YAML merge keys (<<) are not supported"),
        (  # found by the fuzzer: an unhashable provider type was a TypeError
            "dns_providers:\n  x: {type: {a: 1}}\n",
            "f.yaml:2: dns_providers.x.type: expected one of libcloud, route53, rfc2136",
        ),
    ],
)
def test_bad_yaml_values_are_config_errors(head: str, expected: str) -> None:
    found = problems(head + MINIMAL)
    assert any(p.startswith(expected) for p in found), found


def test_a_key_with_a_newline_cannot_forge_an_error_line() -> None:
    text = '"evil\\nf.yaml:1: sites: forged": 1\n"x\\u2028y\\rz": 2\n' + MINIMAL
    found = problems(text)
    assert len(found) == 2
    assert all("\n" not in p and "\r" not in p and "\u2028" not in p for p in found)
    assert found[0] == "f.yaml:1: evil\\nf.yaml:1: sites: forged: unknown key"
    assert found[1] == "f.yaml:2: x\\u2028y\\rz: unknown key"
    # the message as the CLI prints it: one line per problem, no more
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml", env={})
    assert len(str(info.value).splitlines()) == 2


def test_keys_that_yaml_would_read_as_numbers_or_booleans_stay_names() -> None:
    text = MINIMAL.replace("shop:", "1:").replace("primary:", "on:")
    text += "    active: 'on'\n"
    config = parse_config(text, "f.yaml", env={}).config
    assert list(config.sites) == ["1"] and list(config.sites["1"].endpoints) == ["on"]


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,message",
    [
        (".nan", "not NaN"),
        (".inf", "longer than 400d"),
        ("-.inf", "negative"),
        ("-5", "negative"),
        ("1.0e+999", "longer than 400d"),
        ("401d", "longer than 400d"),
        ("9" * 400, "longer than 400d"),
        ("30m1h", "largest first"),
        ("soon", "expected a duration such as 30s, 5m, 1h30m"),
    ],
)
def test_bad_durations_are_located(value: str, message: str) -> None:
    text = MINIMAL + f"    policy: {{down_after: {value}}}\n"
    p = only(text)
    assert p.startswith("f.yaml:8: sites.shop.policy.down_after: ") and message in p, p


@pytest.mark.parametrize(
    "value,seconds",
    [("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("2m30s", 150), ("1d12h", 129600), (45, 45)],
)
def test_compound_durations(value: object, seconds: float) -> None:
    text = MINIMAL + f"    policy: {{cooldown: {value}}}\n"
    assert parse_config(text, "f.yaml", env={}).config.sites["shop"].policy.cooldown == seconds


# --- files: -c and file: secrets ------------------------------------------------------------


def _within(seconds: float, fn: object) -> object:
    """Run fn in a thread; fail (instead of hanging the suite) if it does not return."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["value"] = fn()  # type: ignore[operator]
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds}s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def _secret_problem(tmp_path: Path, target: str) -> str:
    text = f"notify:\n  - url: file:{target}\n" + MINIMAL
    with pytest.raises(ConfigError) as info:
        _within(5, lambda: parse_config(text, "f.yaml", env={}, base_dir=tmp_path))
    (p,) = info.value.problems
    assert p.startswith("f.yaml:2: notify[0].url: cannot read secret file"), p
    return p


def test_secret_from_a_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert "not a regular file (a FIFO)" in _secret_problem(tmp_path, str(tmp_path / "fifo"))


def test_secret_from_dev_zero_is_refused(tmp_path: Path) -> None:
    assert "a character device" in _secret_problem(tmp_path, "/dev/zero")


def test_secret_from_a_directory_is_refused(tmp_path: Path) -> None:
    assert "a directory" in _secret_problem(tmp_path, str(tmp_path))


def test_secret_file_size_is_limited(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1024 * 1024 * 1024)  # 1 GiB, sparse
    assert "larger than 64 KiB" in _secret_problem(tmp_path, str(big))
    ok = tmp_path / "ok"
    ok.write_text("json://127.0.0.1:9/x\n")
    ok.chmod(0o600)
    text = f"notify:\n  - url: file:{ok}\n" + MINIMAL
    assert parse_config(text, "f.yaml", env={}).config.notify[0].url.reveal().endswith("/x")


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir", "big"])
def test_config_file_must_be_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    target = {"fifo": tmp_path / "fifo", "zero": Path("/dev/zero"), "dir": tmp_path}.get(
        kind, tmp_path / "big.yaml"
    )
    if kind == "fifo":
        os.mkfifo(target)
    if kind == "big":
        target.write_text(MINIMAL + "#" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError) as info:
        _within(5, lambda: load_config(target))
    (p,) = info.value.problems
    assert p.startswith(f"{target}: cannot read the config: "), p
    why = {"fifo": "a FIFO", "zero": "a character device", "dir": "a directory"}
    assert why.get(kind, "larger than 1 MiB") in p
