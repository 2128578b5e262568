"""The package's shape: no import cycle, no private cross-import, modules a reader can hold.

The layers themselves (cli > report > validation | scale > analysis > model >
kernels) are ``lint-imports``' contract in pyproject.toml, run by ``make
lint``; this file checks what a layers contract cannot: cycles inside a layer
and between modules of one package, private names used across modules, and
the size of each module. Imports inside functions count everywhere: they run
too, and a cycle through one is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: Above this a module needs a stated reason in its docstring (the phrase
#: "over 600 lines" followed by why), or it should be split.
MAX_LINES = 600


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # imports under TYPE_CHECKING never run: a type named in an annotation is not a cycle
    return grimp.build_graph("lobsim", exclude_type_checking_imports=True)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "lobsim").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    # Tarjan's algorithm (iterative), over module -> imported module edges;
    # a package's __init__ importing its own children is not a cycle of code
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    def successors(m: str) -> list[str]:
        return sorted(graph.find_modules_directly_imported_by(m))

    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(successors(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors(child))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def test_the_graph_sees_imports_inside_functions(graph):
    # the CLI imports its heavy commands inside functions (lobsim.cli.baskets
    # imports pricing in the command's function): the graph must see them
    details = graph.get_import_details(importer="lobsim.cli.baskets",
                                       imported="lobsim.analysis.pricing")
    assert [d["line_contents"].startswith("from") for d in details] == [True]


def test_no_import_cycle(graph):
    assert _strongly_connected(graph) == []


def test_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        g.add_module(m)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.c")
    g.add_import(importer="p.c", imported="p.a")
    assert _strongly_connected(g) == [["p.a", "p.b", "p.c"]]


def _private_imports(module: str, path: Path) -> list[str]:
    """Imports of a private name or module from outside the package that owns it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lobsim"):
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("lobsim")]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    # private to the package holding it: lobsim.model._fields is
                    # lobsim.model's; a private name of a module is that module's
                    owner = ".".join(parts[:i])
                    if not (module == owner or module.startswith(owner + ".")) or (
                            owner != "lobsim" and owner in _MODULES and module != owner):
                        found.append(f"{module}:{node.lineno} imports {target}")
                    break
    return found


_MODULES = {m for m, p in _modules().items() if p.name != "__init__.py"}


def test_no_private_cross_imports():
    found = [f for m, p in _modules().items() for f in _private_imports(m, p)]
    assert found == []


def test_private_import_check_catches_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from lobsim.model.areas import _read_rows\nfrom lobsim.model import _fields\n")
    assert len(_private_imports("lobsim.scale.runner", bad)) == 2
    # inside its own package a private module is fine
    assert _private_imports("lobsim.model.config", bad) == [
        "lobsim.model.config:1 imports lobsim.model.areas._read_rows"]


def test_every_long_module_says_why():
    long = {}
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n > MAX_LINES and "over 600 lines" not in doc:
            long[name] = n
    assert long == {}
