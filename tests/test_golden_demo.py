"""The demo's audit is a stored expectation: refactoring a probe must not change what it finds.

``tests/expected/demo_audit.json`` holds every probe's status, every metric and every check's
name and status from ``auditkit demo`` (timings excluded). A change that is meant to move a
number regenerates it on purpose::

    AUDITKIT_REGEN_GOLDEN=1 python -m pytest tests/test_golden_demo.py
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

EXPECTED = Path(__file__).parent / "expected" / "demo_audit.json"
RELATIVE_TOLERANCE = 1e-6
BUILTIN_PROBES = (
    "performance", "adversarial", "calibration", "corruptions", "bias", "memorization"
)


def essentials(doc: dict) -> dict:
    """What must not change: statuses, metric values, check names and statuses, per probe."""
    return {
        name: {
            "status": probe["status"],
            "metrics": probe["metrics"],
            "checks": [[c["name"], c["status"]] for c in probe["checks"]],
        }
        for name, probe in doc["probes"].items()
    }


def _same_number(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)


def test_demo_audit_matches_the_stored_expectation(demo_run):
    res, out = demo_run
    assert res.exit_code == 0, res.output
    actual = essentials(json.loads((out / "audit.json").read_text()))
    if os.environ.get("AUDITKIT_REGEN_GOLDEN"):
        builtin = {name: actual[name] for name in BUILTIN_PROBES}
        EXPECTED.write_text(json.dumps(builtin, indent=1, sort_keys=True) + "\n")
    expected = json.loads(EXPECTED.read_text())

    # Installed plugins (the example probe, graph, NAS) add probes of their own to the demo;
    # the built-in probes stored here must all be there and unchanged.
    assert set(expected) <= set(actual), (sorted(expected), sorted(actual))
    for name, want in expected.items():
        got = actual[name]
        assert got["status"] == want["status"], (name, got["status"], want["status"])
        assert got["checks"] == want["checks"], name
        assert sorted(got["metrics"]) == sorted(want["metrics"]), name
        changed = {
            metric: (got["metrics"][metric], value)
            for metric, value in want["metrics"].items()
            if not _same_number(got["metrics"][metric], value)
        }
        assert not changed, f"{name} metrics moved (now, expected): {changed}"


@pytest.mark.slow
def test_the_demo_on_two_threads_matches_the_stored_expectation(tmp_path):
    """The suite pins one thread for speed (tests/conftest.py); the same seed must give the same
    numbers whatever the thread count, so ``auditkit demo`` on 2 threads, in a fresh process,
    gives the audit stored from a 1-thread run."""
    import subprocess
    import sys

    code = ("import sys, torch; torch.set_num_threads(2); from auditkit.cli import main; "
            "sys.argv = ['auditkit', 'demo', '--out', sys.argv[1], '--device', 'cpu', '-q']; "
            "main()")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert doc["environment"].get("threads", 2) == 2
    actual = essentials(doc)
    for name, want in json.loads(EXPECTED.read_text()).items():
        assert actual[name]["checks"] == want["checks"], name
        moved = {m: (actual[name]["metrics"][m], v) for m, v in want["metrics"].items()
                 if not _same_number(actual[name]["metrics"][m], v)}
        assert not moved, f"{name} metrics moved on 2 threads (now, expected): {moved}"
