"""No import cycle among cgibox's modules: every import counts (module level, inside a function,
under TYPE_CHECKING), since each is a dependency one module has on the other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "app" / "cgibox"


def import_graph() -> dict[str, set[str]]:
    """cgibox module -> the cgibox modules it imports (`from PACKAGE import MODULE` names MODULE)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts).removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [target for target in submodules if target in modules] or [node.module]
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "cgibox.core.router" in graph["cgibox.fronts.httpserver"]
    assert "cgibox.core.upload" in graph["cgibox.core.writes"]  # an import inside a function


def test_no_import_cycle():
    graph = import_graph()
    assert cycles(graph) == [], {tuple(c): {m: sorted(graph[m] & set(c)) for m in c} for c in cycles(graph)}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_settings_are_checked_without_reaching_into_the_core():
    """config checks a value by the grammar the core applies (cgibox.grammars), not by importing
    the core module that applies it; grammars itself stands on the stdlib alone."""
    graph = import_graph()
    assert graph["cgibox.grammars"] == set()
    for settings_module in ("cgibox.config", "cgibox.cgi_mounts", "cgibox.config_file"):
        core = {m for m in reachable(graph, settings_module) if m.startswith("cgibox.core")}
        assert not core, (settings_module, core)
    for core_user in ("cgibox.core.cgi_protocol", "cgibox.core.access"):
        assert "cgibox.grammars" in graph[core_user]
