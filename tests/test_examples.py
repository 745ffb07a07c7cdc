"""The examples run as documented."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from auditkit.gates import load_policy

ROOT = Path(__file__).resolve().parents[1]


def test_pytest_gate_example_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "examples" / "test_model_gate.py")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_example_policy_is_valid():
    policy = load_policy(ROOT / "examples" / "auditkit.toml")
    assert {r.target for r in policy.rules} >= {"performance.accuracy", "adversarial"}
    assert tomllib.loads((ROOT / "examples" / "auditkit.toml").read_text())["gates"]
