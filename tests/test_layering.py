"""The import graph has no circles where the design says data flows one way.

Results are plain data (no renderer), the context is readable by probes without the pipeline,
and a probe's judge never needs the model's machinery: checked on every import in the files,
function-level ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "auditkit"


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
