"""The core never needs the plugin: with auditkit-graph's entry points hidden and its packages
unimportable, `auditkit probes` works and core tests pass (in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

HIDE = textwrap.dedent('''
    """Loaded with `python -m pytest -p hide_graph_plugin` / imported first: no auditkit-graph."""
    import importlib.metadata as md
    import sys

    sys.modules["auditkit_graph"] = None   # import auditkit_graph -> ImportError
    sys.modules["torch_geometric"] = None  # and the core cannot lean on PyG either
    _entry_points = md.entry_points


    def entry_points(**params):
        found = _entry_points(**params)
        if not params:  # the legacy all-groups mapping; auditkit always asks for one group
            return found
        keep = [ep for ep in found if getattr(ep.dist, "name", None) != "auditkit-graph"]
        return md.EntryPoints(keep)


    md.entry_points = entry_points
''')


def _run(args, tmp_path):
    (tmp_path / "hide_graph_plugin.py").write_text(HIDE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_core_lists_probes_without_the_plugin(tmp_path):
    code = "import hide_graph_plugin; from auditkit.cli import main; import sys; sys.argv=['auditkit','probes']; main()"
    result = _run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "performance" in result.stdout and "graph_structure" not in result.stdout


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
def test_core_tests_pass_without_the_plugin(tmp_path):
    result = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "hide_graph_plugin", "-p", "no:cacheprovider",
         "tests/test_registry.py", "tests/test_archfile.py"],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_report_of_a_graph_audit_renders_without_the_plugin(tmp_path, karate_model):
    from auditkit_graph.data import node_audit_data
    from auditkit_graph.probes.graph_structure import GraphStructureProbe

    import auditkit

    graph, _, classifier = karate_model
    result = auditkit.scan(classifier, node_audit_data(graph), probes=[GraphStructureProbe],
                           budget="fast")
    audit = tmp_path / "audit.json"
    result.save_json(audit)
    code = ("import hide_graph_plugin, sys; from auditkit.cli import main; "
            f"sys.argv=['auditkit','report',{str(audit)!r},'-o',{str(tmp_path / 'r.html')!r}]; main()")
    rendered = _run([sys.executable, "-c", code], tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    html = (tmp_path / "r.html").read_text()
    assert "graph_structure" in html and 'data-partial="graph-structure"' not in html
