"""The import graph keeps the layering: no circles, and data flows one way.

Every import in every file counts, function-level and ``TYPE_CHECKING`` ones included: a circle
hidden inside a function is still a circle (it only fails later, at the call). The graph is read
from the source (``ast``), so the rules hold for modules no test happens to import.

Rules (docs/architecture.md explains the layers):
- no circle among ``auditkit`` modules, nor inside a plugin distribution;
- probes hand the renderer data: nothing under ``auditkit.probes`` imports ``auditkit.render``;
- ``auditkit.functional`` (pure math) imports nothing of auditkit above it;
- results are plain data, the context is readable without the pipeline, and a probe's judge
  never needs the model's machinery.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "auditkit"
PLUGIN_PACKAGES = sorted(
    p for p in (REPO / "plugins").glob("*/auditkit_*") if (p / "__init__.py").is_file()
)


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """{module: the modules of the same package it imports}, from every import statement.

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``; an
    import of an outside package (torch, another distribution) is no edge.
    """
    files = {module_name(p, package_dir): p for p in package_dir.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x / from ..y import z
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                while target and target not in files:  # import a.b.c -> the deepest module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_auditkit_has_no_import_circle():
    assert circles(import_graph(ROOT)) == []


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_a_plugin_has_no_import_circle(package):
    assert circles(import_graph(package)) == []


def test_probes_never_import_the_renderer():
    graph = import_graph(ROOT)
    offenders = {m: sorted(t for t in targets if t.startswith("auditkit.render"))
                 for m, targets in graph.items() if m.startswith("auditkit.probes")}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_functional_imports_nothing_above_it():
    graph = import_graph(ROOT)
    above = {m: sorted(t for t in targets if not t.startswith("auditkit.functional"))
             for m, targets in graph.items() if m.startswith("auditkit.functional")}
    assert {m: t for m, t in above.items() if t} == {}


def test_the_graph_sees_a_circle_hidden_in_a_function(tmp_path):
    """The check can fail: a function-level import that closes a loop is found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "low.py").write_text("X = 1\n")
    (package / "a.py").write_text("from pkg import low\n")
    (package / "sub" / "b.py").write_text(textwrap.dedent("""
        import pkg.a

        def late():
            from ..low import X  # relative and inside a function: still an edge
    """))
    graph = import_graph(package)
    assert graph["pkg.sub.b"] == {"pkg.a", "pkg.low"}
    assert circles(graph) == []
    (package / "low.py").write_text("def f():\n    from .sub import b\n")  # closes the loop
    assert circles(import_graph(package)) == [["pkg.a", "pkg.low", "pkg.sub.b"]]


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(("module", "forbidden"), [
    ("results.py", ("auditkit.render", "auditkit.outputs", "auditkit.pipeline")),
    ("context.py", ("auditkit.pipeline", "auditkit.probes", "auditkit.render")),
    ("probes/base.py", ("auditkit.pipeline", "auditkit.render")),
    ("options.py", ("auditkit.pipeline", "auditkit.probes", "auditkit.render")),
])
def test_lower_layers_do_not_import_higher_ones(module, forbidden):
    found = imports(ROOT / module)
    assert not {m for m in found if m.startswith(forbidden)}, found


def test_probes_read_the_context_not_the_pipeline():
    for path in (ROOT / "probes").rglob("*.py"):
        assert not {m for m in imports(path) if m.startswith("auditkit.pipeline")}, path


@pytest.mark.parametrize("judge", sorted((ROOT / "probes").glob("*/judge.py")),
                         ids=lambda p: p.parent.name)
def test_a_judge_runs_no_model(judge):
    """Judges take measured data; they import neither torch's nn nor the attacks."""
    found = imports(judge)
    assert not {m for m in found if m.startswith(("torch.nn", "auditkit.attacks",
                                                  "auditkit.adapters", "auditkit.reinit"))}


def test_documented_old_paths_name_the_moved_modules():
    """The README's ``auditkit.safety.LoadLimits`` and friends are the moved modules themselves."""
    import importlib

    from auditkit._moved import MOVED

    for old, new in MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
