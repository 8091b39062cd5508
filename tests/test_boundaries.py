"""The packages keep their one-way dependencies (DESIGN.md), and no two of our modules import each other.

Two views: what actually loads when a package is imported in a fresh
interpreter (through every module in between), and what every source file
names in an import statement, parsed, wherever it is (inside functions too,
relative imports resolved), so a lazy import cannot slip past.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def _imported_after(modules: list[str], top_level: bool = True) -> set[str]:
    names = "{name.split('.')[0] for name in sys.modules}" if top_level else "set(sys.modules)"
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + f"print(' '.join(sorted({names})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "modules, forbidden",
    [
        (["channels_core", "channels_core.layers"], {"django", "twisted", "autobahn"}),
        (["routing"], {"channels_core", "worker", "interface_server", "django", "twisted", "autobahn"}),
        (["worker", "worker.pool"], {"interface_server", "twisted", "autobahn"}),
        (
            [
                "interface_server.cli",
                "interface_server.server",
                "interface_server.http_protocol",
                "interface_server.ws_protocol",
            ],
            {"django"},
        ),
    ],
)
def test_package_does_not_import(modules, forbidden):
    assert _imported_after(modules) & forbidden == set()


def test_interface_server_imports_only_the_layers_of_channels_core():
    modules = [f"interface_server.{name}" for name in ("cli", "server", "http_protocol", "ws_protocol")]
    imported = _imported_after(modules, top_level=False)
    ours = {name for name in imported if name.split(".")[0] == "channels_core"}
    assert {name for name in ours if name != "channels_core" and not name.startswith("channels_core.layers")} == set()


# -- what the sources name: every import statement, at module level or inside a function ------------

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("channels_core", "routing", "worker", "interface_server")
EVENT_LOOPS = ("twisted", "autobahn")
# The parts of channels_core that run the server and the workers (DESIGN.md: worker only from the management
# commands; runserver and the live-server test processes start the interface server too).
RUNNERS = ("channels_core.management.commands", "channels_core.test.live_processes")


def _project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _project_modules()


@dataclass(frozen=True)
class Import:
    name: str  # a project module (the longest one the statement names), or the dotted third-party name
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`: named for the type checker, never run


def _resolve(dotted: str) -> str:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return dotted


def _named_by_from(module: str, name: str) -> str:
    """`from module import name` imports the submodule module.name when there is one, else module itself."""
    return f"{module}.{name}" if f"{module}.{name}" in MODULES else _resolve(module)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, source: str, is_package: bool = False) -> list[Import]:
    """Every module `module`'s source imports, wherever the statement is; relative imports resolved."""
    tree = ast.parse(source)
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _is_type_checking(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [_resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source_module = ".".join(base + ([node.module] if node.module else []))
            else:
                source_module = node.module
            names = [_named_by_from(source_module, alias.name) for alias in node.names]
        else:
            continue
        found += [Import(name, node.lineno, id(node) in type_only) for name in names if name != module]
    return found


IMPORTS = {module: imports_of(module, path.read_text(), path.name == "__init__.py") for module, path in MODULES.items()}


def _within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _forbidden(importer: str, name: str) -> str | None:
    """Why `importer` may not import `name` (DESIGN.md's package table), or None."""
    top = importer.split(".")[0]
    if top == "routing" and _within(name, "channels_core", "worker", "interface_server"):
        return "routing imports nothing else of ours"
    if top == "worker" and _within(name, "interface_server"):
        return "worker imports routing and channels_core only"
    if top == "interface_server":
        if _within(name, "django"):
            return "interface_server never imports Django"
        if _within(name, "channels_core", "routing", "worker") and not _within(name, "channels_core.layers"):
            return "interface_server imports channels_core.layers only"
    if _within(importer, "channels_core.layers"):
        if _within(name, "django", *EVENT_LOOPS):
            return "channels_core.layers imports neither Django nor Twisted"
        if _within(name, *PACKAGES) and not _within(name, "channels_core.layers") and name != "channels_core":
            return "channels_core.layers imports nothing of ours outside itself (the rest is Django)"
    if top == "channels_core" and not _within(importer, *RUNNERS):
        if _within(name, "worker", "interface_server", *EVENT_LOOPS):
            return "channels_core starts workers and servers only from its management commands"
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_sources_import_only_what_the_design_allows(package):
    wrong = [
        f"{MODULES[module].relative_to(ROOT)}:{found.line} imports {found.name}: {reason}"
        for module in MODULES
        if _within(module, package)
        for found in IMPORTS[module]
        if (reason := _forbidden(module, found.name))
    ]
    assert wrong == []


def test_imports_inside_functions_and_relative_imports_are_seen():
    source = (
        "from . import sibling\n"
        "from ..layers import base\n"
        "def handler():\n"
        "    import django.conf\n"
        "    from .. import exceptions as errors\n"
    )
    found = {i.name for i in imports_of("channels_core.test.client", source)}
    assert {"channels_core.test", "channels_core.layers.base", "django.conf", "channels_core.exceptions"} <= found
    assert _forbidden("interface_server.server", "django.conf")
    assert _forbidden("interface_server.server", "channels_core.asgi")
    assert not _forbidden("interface_server.server", "channels_core.layers.contract")


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def test_cycle_finder_finds_a_circle_through_a_function_level_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_project_modules():
    graph = {
        module: {i.name for i in IMPORTS[module] if i.name in MODULES and not i.type_checking} for module in MODULES
    }
    assert [sorted(cycle) for cycle in _cycles(graph)] == []
