"""The shape of the house (``ARCHITECTURE.md``), checked on the source: which room may import
which, no import circles, no module past the size where it wants splitting.

Imports are read with ``ast`` (module level and inside functions alike), so a lazy import
that closes a circle counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("feeds", "analyzers", "s4_strategies")
MAX_LINES = 400

# room -> roots of this project it may import (besides itself). A room is a package or a
# top-level module of s4_strategies; feeds.atomic, feeds.bartime and feeds.errors are pure
# (stdlib, pandas, numpy) and open to everyone.
PURE = ("feeds.atomic", "feeds.bartime", "feeds.errors")
ALLOWED = {
    "feeds": (),
    "analyzers": ("feeds",),
    "s4_strategies.features": PURE,
    "s4_strategies.ssm": (),
    "s4_strategies.model": ("s4_strategies.features", "s4_strategies.ssm", *PURE),
    "s4_strategies.training": ("s4_strategies.features", "s4_strategies.ssm",
                               "s4_strategies.model", "s4_strategies.fees", "s4_strategies.rules",
                               "analyzers.metrics", "feeds"),
    "s4_strategies.fees": (),
    "s4_strategies.rules": (),
    "s4_strategies.indicators": ("s4_strategies.model", *PURE),
    "s4_strategies.market_making": ("s4_strategies.fees", *PURE),
    "s4_strategies.strategies": ("s4_strategies.indicators", "s4_strategies.market_making",
                                 "s4_strategies.fees", "s4_strategies.rules", *PURE),
    "s4_strategies.live": ("feeds", "s4_strategies.indicators", "s4_strategies.strategies",
                           "s4_strategies.model", "s4_strategies.fees", "s4_strategies.rules"),
    "s4_strategies.apps": ("feeds", "analyzers", "s4_strategies"),
    "s4_strategies": (),  # the package's own __init__ (lazy names only)
}
# third-party libraries a room must never import
FORBIDDEN = {
    "feeds": ("torch",),
    "analyzers": ("torch",),
    "s4_strategies.features": ("torch", "backtrader"),
    "s4_strategies.ssm": ("backtrader",),
    "s4_strategies.market_making": ("torch",),
    "s4_strategies.live": ("torch",),
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> set[str]:
    """Absolute names of everything ``name`` imports (project modules resolved to modules)."""
    tree = ast.parse(MODULES[name].read_text())
    base = name.split(".") if _is_package(name) else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - node.level + 1]
                mod = ".".join(stem + ([node.module] if node.module else []))
            else:
                mod = node.module
            for a in node.names:
                sub = f"{mod}.{a.name}"
                found.add(sub if sub in MODULES else mod)
    return found


GRAPH = {name: {m for m in _imports(name) if m in MODULES} for name in MODULES}


def _room(name: str) -> str:
    if name.startswith("s4_strategies."):
        parts = name.split(".")
        return ".".join(parts[:2])
    return name.split(".")[0] if name.split(".")[0] != "s4_strategies" else name


def _within(target: str, roots) -> bool:
    return any(target == r or target.startswith(r + ".") for r in roots)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_rooms_import_only_what_they_may(name):
    room = _room(name)
    allowed = ALLOWED[room]
    bad = sorted(t for t in GRAPH[name]  # the bare root package holds only lazy names
                 if _room(t) != room and t != "s4_strategies" and not _within(t, allowed))
    assert not bad, f"{name} ({room}) imports {bad}; {room} may import {allowed or 'nothing'}"
    libs = {m.split(".")[0] for m in _imports(name)}
    forbidden = sorted(libs & set(FORBIDDEN.get(room, ())))
    assert not forbidden, f"{name} imports {forbidden}, which {room} must not"


def test_no_import_circles():
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_room_is_declared():
    assert {_room(n) for n in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    n = len(MODULES[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines (> {MAX_LINES}): split it by job"


def test_the_checker_sees_a_circle_and_a_forbidden_import(monkeypatch):
    """The checks above can fail: a made-up circle and a made-up import are caught."""
    graph = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setattr(__import__(__name__), "GRAPH", graph, raising=False)
    with pytest.raises(AssertionError, match="a -> b -> a"):
        test_no_import_circles()
    assert _imports("s4_strategies.indicators.s4") >= {"s4_strategies.model", "backtrader"}
