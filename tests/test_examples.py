"""The examples run as documented, and the docs' snippets say what the examples do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.gates import load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
def test_pytest_gate_example_passes(demo_model_file):
    # The example trains the demo model unless AUDITKIT_MODEL names one; reuse the session's.
    env = {**os.environ, "AUDITKIT_MODEL": str(demo_model_file)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(EXAMPLES / "test_model_gate.py")],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
def test_example_policy_is_met_by_the_demo_model(tmp_path, demo_model_file, monkeypatch):
    """What a user copies must work: the shipped policy passes on the shipped demo model."""
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app, ["scan", str(demo_model_file), "--policy", str(EXAMPLES / "auditkit.toml"),
              "--budget", "fast", "--device", "cpu", "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 0, res.output
    assert "gate failed" not in res.output
    # The demographic gate warns on data without sensitive columns, and says why.
    assert "gate warned: bias.accuracy_difference not measured: the data has no sensitive" in (
        res.output
    )
    targets = {r.target for r in load_policy(EXAMPLES / "auditkit.toml").rules}
    assert {"performance.accuracy", "bias.proxy_accuracy_difference", "adversarial"} <= targets


def test_docs_policy_snippet_is_the_example_policy():
    section = (ROOT / "docs" / "ci.md").read_text()  # "In CI", moved from the README
    snippet = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    import tomllib

    from_readme = parse_policy(tomllib.loads(snippet)).rules
    assert from_readme == load_policy(EXAMPLES / "auditkit.toml").rules


def test_workflow_installs_auditkit_from_source_not_by_name():
    """`pip install auditkit` would fetch an unrelated PyPI project of that name."""
    workflow = (EXAMPLES / "github-actions-audit.yml").read_text()
    installs = [line.strip() for line in workflow.splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        assert not re.search(r"pip install\s+auditkit\b", line), line
    assert any("./tools/auditkit" in line or "dist/auditkit-" in line for line in installs)
    hosts = set(re.findall(r"https?://([^/\s]+)", workflow))
    assert hosts <= {"download.pytorch.org"}, hosts
