"""Guards of the layout (issue #9): no import cycles, pure modules that stay pure, SQL only
where it belongs, package `__init__` files that import nothing. Tests, not review."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("failover", "providers")

# Decisions without I/O: these import no SQL, subprocess, network, store, notifier or SDK.
PURE = (
    "failover.hooks",
    "failover.humanize",
    "failover.events",
    "failover.errors",
    "failover.scrub",
    "failover.durations",
    "failover.watch.health",
    "failover.watch.probes.wire",
    "failover.watch.probes.result",
    "failover.runs.model",
    "failover.runs.plan",
    "failover.runs.drill_rules",
    "failover.runs.readiness",
    "failover.dns.plan",
    "failover.dns.names",
    "failover.backup.schedule",
    "failover.backup.parts",
    "failover.backup.restic_parse",
    "failover.show.uptime",
    "failover.show.charts",
    "failover.show.families",
    "failover.show.html",
    "failover.show.page",
    "failover.show.report_html",
    "failover.maintenance.window",
    "failover.doctor.report",
    "failover.config.advice",
    "failover.coordination.quorum",
    "failover.coordination.lease",
)
FORBIDDEN_TOP = {
    "sqlite3", "subprocess", "asyncio", "ssl", "boto3", "botocore", "libcloud", "apprise",
    "dns", "requests", "urllib3", "pydantic", "yaml", "schedule",
}  # fmt: skip
FORBIDDEN_OURS = {
    "failover.store",
    "failover.notify",
    "failover.watch.daemon",
    "failover.watch.round",
    "failover.runs.engine",
    "failover.runs.journal",
}
# Where SQL may be written: the store, and each area's journal.
SQL_HOMES = {"failover/store.py"}
SQL_HOME_NAME = "journal.py"
# SQL text that is not ours: the sqlite3 command line's probe of a database being dumped.
FOREIGN_SQL = {"failover/backup/parts.py"}
# providers' package files hold their lazy registry ("kind" -> "module:Class"), nothing else.
REGISTRY_IMPORTS = {"__future__", "typing", "providers.common"}


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, str]]:
    """(imported module, name or '') for every import that runs, at module level or inside a
    function; `if TYPE_CHECKING:` blocks are for the type checker only."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ""
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")
                if not is_package:
                    parent = parent[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                yield base, alias.name
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _sources()}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, imported in _runtime_imports(tree, name, path.name == "__init__.py"):
            if target.split(".")[0] not in PACKAGES:
                continue
            candidates = [f"{target}.{imported}", target] if imported else [target]
            found = next((c for c in candidates if c in modules), None)
            if found is None:
                raise AssertionError(f"{path}: imports {target}.{imported}, which does not exist")
            graph[name].add(found)
            # importing a.b.c runs a and a.b first
            parts = found.split(".")
            graph[name].update(".".join(parts[:i]) for i in range(1, len(parts)))
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle_through_a_function_level_import() -> None:
    a = ast.parse("def f():\n    from failover import b\n")
    edges = list(_runtime_imports(a, "failover.a", False))
    assert ("failover", "b") in edges
    assert cycles({"x": {"y"}, "y": {"x"}, "z": set()}) == [["x", "y"]]
    hidden = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import failover.b\n"
    )
    assert ("failover.b", "") not in list(_runtime_imports(hidden, "failover.a", False))


@pytest.mark.parametrize("module", PURE)
def test_pure_module_loads_no_io(module: str) -> None:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    loaded = set(json.loads(out))
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_TOP or m in FORBIDDEN_OURS)
    assert not bad, f"{module} loads {bad}"


def _sql_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """A store's connection or transaction touched, or SQL text written."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("conn", "transaction"):
            yield node.lineno, f".{node.attr}"
        elif isinstance(node, ast.Attribute) and node.attr.startswith("execute"):
            receiver = node.value
            if isinstance(receiver, ast.Name) and receiver.id in ("c", "cur", "conn", "db"):
                yield node.lineno, f"{receiver.id}.{node.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.upper().split())
            if any(k in text for k in ("CREATE TABLE", "INSERT INTO", "DELETE FROM")) or (
                text.startswith(("SELECT ", "UPDATE ")) and (" FROM " in text or " SET " in text)
            ):
                yield node.lineno, "SQL text"


def test_sql_lives_only_in_the_store_and_the_journals() -> None:
    offenders = []
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        if rel in SQL_HOMES or path.name == SQL_HOME_NAME:
            continue
        uses = _sql_uses(ast.parse(path.read_text()))
        offenders += [
            f"{rel}:{n}: {what}"
            for n, what in uses
            if not (what == "SQL text" and rel in FOREIGN_SQL)
        ]
    assert not offenders, "SQL outside the store and the journals:\n" + "\n".join(offenders)


def test_the_sql_check_sees_sql() -> None:
    sample = 'def f(store):\n    store.conn.execute("SELECT * FROM runs")\n'
    assert {what for _, what in _sql_uses(ast.parse(sample))} == {".conn", "SQL text"}
    assert not list(_sql_uses(ast.parse("engine.execute(loaded, store, run)")))


def test_package_inits_import_nothing() -> None:
    """`failover --help` must not pay for a package it does not use."""
    for path in _sources():
        if path.name != "__init__.py":
            continue
        rel = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text())
        allowed = REGISTRY_IMPORTS if rel.startswith("providers/") else {"__future__"}
        name = _module_name(path)
        found = {target for target, _ in _runtime_imports(tree, name, True)}
        extra = sorted(found - allowed)
        assert not extra, f"{rel} imports {', '.join(extra)}"
