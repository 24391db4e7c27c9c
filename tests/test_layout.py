"""The shape of the code: the library imports nothing from `experiments`,
no module imports itself back through others, `experiments/` holds entry
points grouped by experiment."""

import ast
import os
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("dqs_jax", "experiments")


def _modules() -> Dict[str, str]:
    """`{dotted module name: path}` of every module of both packages."""
    found = {}
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = path
    return found


def _imports(path: str, modules: Dict[str, str]) -> Set[str]:
    """The modules of both packages that `path` imports (anywhere in it)."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names.append(node.module)
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        # A package's own __init__ importing its submodules (and them
        # importing siblings through it) is how packages work: no edge to
        # an enclosing package.
        graph[name] = {m for m in _imports(path, modules)
                       if m != name and not name.startswith(m + ".")}
    return graph


def test_the_library_imports_nothing_from_experiments():
    bad = {name: sorted(m for m in deps if m.startswith("experiments"))
           for name, deps in _graph().items() if name.startswith("dqs_jax")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_import_cycle():
    graph = _graph()
    state: Dict[str, int] = {}  # 1: on the current path, 2: done.

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_experiments_top_level_is_a_few_entry_points():
    entries = sorted(e for e in os.listdir(os.path.join(ROOT, "experiments"))
                     if e != "__pycache__")
    assert len(entries) <= 11, entries
    # The commands users type keep working.
    for module in ("train.py", "reproduce.py", "report.py"):
        assert module in entries
    for package in ("gmm", "maze"):
        assert os.path.exists(os.path.join(ROOT, "experiments", package,
                                           "__main__.py"))
