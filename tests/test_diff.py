"""`auditkit diff`: direction-aware regressions beyond tolerance."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.diff import diff_results, render_diff_markdown
from auditkit.results import AuditResult, ProbeResult


def _audit(**metrics: float) -> AuditResult:
    return AuditResult(
        model={}, data={}, environment={},
        probes={"performance": ProbeResult(name="performance", status="passed", metrics=metrics)},
    )


def test_injected_regression_is_detected_and_small_changes_ignored():
    base = _audit(accuracy=0.95, balanced_accuracy=0.94)
    new = _audit(accuracy=0.90, balanced_accuracy=0.935)
    changes = {c.metric: c for c in diff_results(base, new, tolerance=0.01)}
    assert changes["performance.accuracy"].regression
    assert not changes["performance.balanced_accuracy"].regression  # −0.005, within tolerance


def test_improvements_are_not_regressions_and_per_metric_tolerance_applies():
    base, new = _audit(accuracy=0.90), _audit(accuracy=0.95)
    (change,) = diff_results(base, new)
    assert change.improvement and not change.regression
    worse = _audit(accuracy=0.88)
    assert diff_results(base, worse, tolerances={"performance.accuracy": 0.05})[0].regression is False
    assert diff_results(base, worse, tolerance=0.01)[0].regression is True


def test_a_vanished_metric_is_a_regression():
    (change,) = diff_results(_audit(accuracy=0.9), _audit())
    assert change.regression and change.new is None


def test_cli_diff_exit_codes_and_markdown(tmp_path):
    base, same, worse = tmp_path / "base.json", tmp_path / "same.json", tmp_path / "worse.json"
    base.write_text(_audit(accuracy=0.95).to_json())
    same.write_text(_audit(accuracy=0.948).to_json())
    worse.write_text(_audit(accuracy=0.80).to_json())
    runner = CliRunner()
    ok = runner.invoke(app, ["diff", str(base), str(same)])
    assert ok.exit_code == 0, ok.output
    md = tmp_path / "diff.md"
    bad = runner.invoke(app, ["diff", str(base), str(worse), "--markdown", str(md)])
    assert bad.exit_code == 1
    assert "performance.accuracy" in md.read_text() and "regression" in md.read_text()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"probes": "nope"}))
    res = runner.invoke(app, ["diff", str(base), str(broken)])
    assert res.exit_code == 2


def test_markdown_lists_only_changes_by_default():
    changes = diff_results(_audit(accuracy=0.9, balanced_accuracy=0.9),
                           _audit(accuracy=0.8, balanced_accuracy=0.9))
    text = render_diff_markdown(changes)
    assert "performance.accuracy" in text and "balanced_accuracy" not in text
